"""``comity federation``: sign a release of the federation file, and check one before trusting it.

``sign`` adds one signature to the file's detached envelope (``<file>.dsse``); each signer of the
release runs it with their own key. ``verify`` checks a file against the previous trusted version
(``--trusted``) or, for the first version, against its pinned SHA-256 (``--pin``); the checks
are those of :mod:`comity.core.federation_sign`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

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

__all__ = ["app"]

app = typer.Typer(help="Sign and verify releases of the federation file.", no_args_is_help=True)


@app.command("sign")
def sign(
    file: Annotated[Path, typer.Argument(help="The federation file to sign (it must load).")],
    key: Annotated[Path, typer.Option(help="Your Ed25519 private key file.")],
    key_id: Annotated[
        str,
        typer.Option(
            help="The id the previous version's [signing] lists your key under "
            "(default: found by the key in this file's [signing])."
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
