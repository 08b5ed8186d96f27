"""``comity federation``: sign a release of the federation file, and check one before trusting it.

``add-member`` writes a new member's keys, certificates, key set and node config, and the next
version of the file with its entry and agreements (:mod:`comity.core.onboarding`). ``sign`` adds
one signature to the file's detached envelope (``<file>.dsse``); each signer of the release runs
it with their own key. ``verify`` checks a file against the previous trusted version
(``--trusted``) or, for the first version, against its pinned SHA-256 (``--pin``); the checks
are those of :mod:`comity.core.federation_sign`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from comity.core.errors import ConfigError, InvalidArgument
from comity.core.federation import Federation
from comity.core.federation_sign import (
    envelope_path,
    file_sha256,
    sign_federation_file,
    verify_pinned,
    verify_update,
)
from comity.core.keys import SigningKey
from comity.sdk.cli._common import errors_exit, passphrase_from_env, stderr, stdout

if TYPE_CHECKING:
    from comity.core.agreements import Agreement
    from comity.policy.bundle import PolicyBundle

__all__ = ["app"]

app = typer.Typer(
    help="Add members to, sign and verify releases of the federation file.", no_args_is_help=True
)


@app.command("add-member")
def add_member(
    file: Annotated[Path, typer.Argument(help="The current (trusted) federation file.")],
    node: Annotated[
        str, typer.Option("--node", help="The new member's country and its node's port, COUNTRY:PORT.")
    ],
    bundles: Annotated[
        list[Path] | None,
        typer.Option(
            "--bundles",
            help="A folder of policy bundles (or one bundle) holding the new agreements' bundles; "
            "copied by digest into the bundles folder beside FILE.",
        ),
    ] = None,
    agreement: Annotated[
        list[str] | None,
        typer.Option(
            "--agreement",
            help="Join only this agreement (a gateway bundle's name); default: every bundle whose "
            "parties are the new member and existing members.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Where the next version goes (default: federation.vN.toml beside FILE)."),
    ] = None,
    threshold: Annotated[
        int | None, typer.Option(help="The next version's \\[signing] threshold (default: the current one).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address the new node listens on.")] = "127.0.0.1",
    passphrase_env: Annotated[
        str | None,
        typer.Option(help="Encrypt private keys with the passphrase in this environment variable."),
    ] = None,
) -> None:
    """Write a new member's files and the next version of FILE, to be signed by the current signers."""
    from comity.core.onboarding import add_member as write_member
    from comity.core.onboarding import member_country
    from comity.policy.bundle_store import BundleStore
    from comity.policy.pairing import extra_bundles
    from comity.sdk.cli.init_cmd import parse_node

    with errors_exit():
        raw_country, port = parse_node(node)
        country = member_country(raw_country)
        current = Federation.load(file)
        extra = extra_bundles(bundles or [])
        chosen = _joined(current, country, extra, agreement or [])
        member = write_member(
            file,
            country=country,
            port=port,
            agreements=chosen,
            host=host,
            out=out,
            threshold=threshold,
            passphrase=passphrase_from_env(passphrase_env),
        )
        store = BundleStore(file.resolve().parent / "bundles")
        for bundle in extra:
            store.keep(bundle)
    n, a = member.node, member.agency
    stdout.print(f"wrote version {member.version} of federation {current.name!r} to {member.federation_file}")
    stdout.print(f"  {n.node_id} ({n.country}) {n.endpoint}, config {member.node_config}", soft_wrap=True)
    stdout.print(f"  {a.agency}: investigator {a.investigator}, authority {a.authority}, JWKS {a.jwks}")
    for joined in member.agreements:
        stdout.print(f"  agreement {joined.id}: {' – '.join(joined.parties)}", soft_wrap=True)
    if not member.agreements:
        stderr.print(f"no agreement binds {country}: every query to or from it will be refused NO_AGREEMENT")
    signers = ", ".join(current.signing.keys) if current.signing else ""
    stdout.print(
        f"next: {member.threshold} of version {current.version}'s signers ({signers}) sign it with "
        f"comity federation sign {member.federation_file} --key <their federation key>",
        soft_wrap=True,
    )


def _joined(
    current: Federation, country: str, extra: list[PolicyBundle], names: list[str]
) -> list[Agreement]:
    """The agreements the new member joins: those of the bundles binding it, or the ``names`` among them."""
    from comity.policy.pairing import agreements_from_bundles, shipped_bundles

    members = {m.country for m in current.members} | {country}
    found = [
        a for a in agreements_from_bundles([*shipped_bundles(), *extra], members) if country in a.parties
    ]
    if not names:
        return found
    by_id = {a.id: a for a in found}
    missing = [n for n in names if n not in by_id]
    if missing:
        raise ConfigError(
            f"no gateway bundle named {', '.join(missing)} binds {country} and members of {current.name!r}",
            field="--agreement",
            hint="give the folder holding its bundles with --bundles; each bundle.toml names its parties"
            + (f" (agreements found: {', '.join(by_id)})" if by_id else ""),
        )
    return [by_id[n] for n in dict.fromkeys(names)]


@app.command("sign")
def sign(
    file: Annotated[Path, typer.Argument(help="The federation file to sign (it must load).")],
    key: Annotated[Path, typer.Option(help="Your Ed25519 private key file.")],
    key_id: Annotated[
        str,
        typer.Option(
            help="The id the previous version's \\[signing] lists your key under "
            "(default: found by the key in this file's \\[signing])."
        ),
    ] = "",
    passphrase_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the key's passphrase.")
    ] = None,
) -> None:
    """Add your signature to FILE.dsse, over FILE's exact bytes."""
    with errors_exit():
        loaded = SigningKey.load(
            key, key_id=key_id or "signer", passphrase=passphrase_from_env(passphrase_env)
        )
        signer = loaded if key_id else SigningKey(_find_key_id(file, loaded), loaded.private_key)
        envelope, dropped = sign_federation_file(file, signer)
    if dropped:
        stderr.print(f"the envelope signed other bytes: its {dropped} signature(s) were dropped")
    names = ", ".join(s.keyid for s in envelope.signatures)
    stdout.print(
        f"signed {file} as {signer.key_id} → {envelope_path(file)} (signed by {names})", soft_wrap=True
    )


def _find_key_id(file: Path, key: SigningKey) -> str:
    role = Federation.load(file).signing
    public = key.verifying_key.public_key.public_bytes_raw()
    for key_id, listed in (role.keys if role else {}).items():
        if listed.public_key.public_bytes_raw() == public:
            return key_id
    raise ConfigError(
        f"your key is not among the [signing] keys of {file}",
        hint="give --key-id: the id the previous version's [signing] lists your key under",
    )


@app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="The federation file to check.")],
    trusted: Annotated[
        Path | None, typer.Option(help="The previous version, already trusted (its signing keys decide).")
    ] = None,
    pin: Annotated[str, typer.Option(help="For a first version: its SHA-256, agreed out of band.")] = "",
    envelope: Annotated[Path | None, typer.Option(help="The envelope (default: FILE.dsse).")] = None,
    at: Annotated[str, typer.Option(help="Check expiry at this ISO 8601 time (default: now).")] = "",
) -> None:
    """Check FILE before trusting it; exit non-zero, saying why, when it must not be trusted."""
    with errors_exit():
        if trusted is not None and pin:
            raise InvalidArgument("give --trusted (a next version) or --pin (a first version), not both")
        now = _instant(at)
        if trusted is not None:
            federation = verify_update(Federation.load(trusted), file, now=now, envelope=envelope)
        else:
            federation = verify_pinned(file, pin, now=now)
    expires = federation.expires.isoformat() if federation.expires else "never (format 1)"
    stdout.print(f"trusted: federation {federation.name!r} version {federation.version}, expires {expires}")
    stdout.print(f"sha256 {file_sha256(file.read_bytes())}", soft_wrap=True)


def _instant(text: str) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"--at {text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
