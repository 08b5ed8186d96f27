"""``comity token``: bearer tokens from an identity provider's key, for operators and test set-ups.

An agency's identity provider normally issues investigators' and legal officers' tokens.
``comity token mint`` does the same with the provider's signing key (``comity keys issuer``),
and refuses what the gateway would refuse: the token is verified with the gateway's own checks
against the federation before it is written.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from comity.core.errors import ConfigError, NotFound
from comity.sdk.cli._common import errors_exit, passphrase_from_env, stdout

__all__ = ["app", "mint"]

app = typer.Typer(help="Mint bearer tokens with an identity provider's key.", no_args_is_help=True)

#: The longest token life the gateway accepts (its TokenVerifier's default).
MAX_LIFETIME = timedelta(hours=12)


def mint(
    federation_file: Path,
    *,
    issuer: str,
    key_file: Path,
    subject: str,
    ttl: timedelta,
    passphrase: bytes | None,
    now: datetime,
) -> str:
    """A token for ``subject`` from ``issuer``, signed with ``key_file``, checked as the gateway would.

    Raises a ComityError naming what is wrong: an issuer the federation does not trust, a key
    not in its JWKS, a subject not registered with its agency, a lifetime out of range.
    """
    from comity.core.federation import Federation
    from comity.core.issuer import jwk_thumbprint, load_issuer_key, mint_token
    from comity.core.tokens import TokenVerifier

    if not timedelta(0) < ttl <= MAX_LIFETIME:
        raise ConfigError(f"--ttl must be between 1 and {int(MAX_LIFETIME.total_seconds() // 60)} minutes")
    federation = Federation.load(federation_file)
    trusted = federation.issuer(issuer)
    private = load_issuer_key(key_file, passphrase=passphrase)
    kid = jwk_thumbprint(private.public_key())
    if kid not in trusted.keys:
        raise ConfigError(
            f"{key_file} is not a key of issuer {issuer}'s JWKS (its kid would be {kid})",
            hint="use the identity provider's key whose JWKS the federation file lists",
        )
    token = mint_token(
        private, issuer=issuer, subject=subject, audience=trusted.audience, ttl=ttl, now=now, kid=kid
    )
    verifier = TokenVerifier(federation, audience=trusted.audience, max_lifetime=MAX_LIFETIME)
    try:
        federation.investigator(subject)
    except NotFound:  # not an investigator: then it must be a legal officer
        verifier.verify_legal_officer(token, now=now)
    else:
        verifier.verify(token, now=now)
    return token


@app.command("mint")
def mint_cmd(
    federation: Annotated[Path, typer.Option("--federation", "-f", help="The federation file.")],
    issuer: Annotated[str, typer.Option(help="The issuer (iss), as the federation lists it.")],
    key: Annotated[Path, typer.Option(help="The identity provider's private key (comity keys issuer).")],
    subject: Annotated[str, typer.Option(help="A registered investigator or legal officer id.")],
    ttl_minutes: Annotated[int, typer.Option("--ttl", min=1, help="Lifetime in minutes (at most 720).")] = 60,
    out: Annotated[Path | None, typer.Option(help="Write the token here (mode 0600), not to stdout.")] = None,
    passphrase_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the key's passphrase.")
    ] = None,
) -> None:
    """Mint a token for a registered subject, verified as the gateway will verify it."""
    with errors_exit():
        token = mint(
            federation,
            issuer=issuer,
            key_file=key,
            subject=subject,
            ttl=timedelta(minutes=ttl_minutes),
            passphrase=passphrase_from_env(passphrase_env),
            now=datetime.now(UTC),
        )
        if out is None:
            typer.echo(token)
            return
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
        out.chmod(0o600)
    stdout.print(f"token for {subject} written to {out} (mode 0600, valid {ttl_minutes} min)")
