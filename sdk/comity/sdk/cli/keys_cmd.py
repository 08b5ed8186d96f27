"""``comity keys``: Ed25519 signing keys for investigators, authorities, nodes and the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from comity.core.errors import ConfigError
from comity.core.keys import SigningKey
from comity.sdk.cli._common import errors_exit, passphrase_from_env, stdout

__all__ = ["app"]

app = typer.Typer(help="Create and inspect Ed25519 signing keys.", no_args_is_help=True)

PassphraseEnv = Annotated[
    str | None,
    typer.Option(
        help="Name of the environment variable holding the key's passphrase (never the passphrase)."
    ),
]


@app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="The key id, e.g. gb.nca/officer-1 (the federation lists it).")],
    out: Annotated[
        Path | None, typer.Option(help="Private key file (default: NAME.key, '/' as '_').")
    ] = None,
    passphrase_env: PassphraseEnv = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Generate a key, write it with mode 0600, and print the public key for the federation file."""
    path = out or Path(name.replace("/", "_") + ".key")
    with errors_exit():
        if path.exists() and not force:
            raise ConfigError(f"{path} already exists", hint="choose another --out, or --force to replace it")
        key = SigningKey.generate(name)
        key.save(path, passphrase=passphrase_from_env(passphrase_env))
    _print_public(key, path)


@app.command("show")
def show(
    path: Annotated[Path, typer.Argument(help="A private key file.")],
    name: Annotated[str, typer.Option(help="The key id to print it under.")] = "",
    passphrase_env: PassphraseEnv = None,
) -> None:
    """Print the public half of a private key file."""
    with errors_exit():
        key = SigningKey.load(path, key_id=name or path.stem, passphrase=passphrase_from_env(passphrase_env))
    _print_public(key, path)


def _print_public(key: SigningKey, path: Path) -> None:
    public = key.verifying_key
    stdout.print(f"key id      {public.key_id}")
    stdout.print(f"private key {path} (mode 0600)")
    stdout.print(f"public key  {public.to_text()}", soft_wrap=True)
    stdout.print(f"fingerprint sha256:{public.fingerprint}", soft_wrap=True)


@app.command("issuer")
def issuer(
    out: Annotated[Path, typer.Option(help="Private signing key of the identity provider (mode 0600).")],
    jwks: Annotated[Path, typer.Option(help="Where to write its public key set (JWKS), for jwks_file.")],
    algorithm: Annotated[
        str, typer.Option(help="EdDSA (Ed25519) or ES256 (P-256): the token algorithms the gateway accepts.")
    ] = "EdDSA",
    passphrase_env: PassphraseEnv = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Make an investigator identity provider's signing key and its JWKS for the federation file.

    The JWKS goes into the member's ``[[members.issuers]]`` as ``jwks_file``; the private key
    signs investigators' tokens (the identity provider keeps it; never publish it).
    """
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from comity.core.bootstrap import write_issuer_key, write_jwks
    from comity.core.issuer import jwk_thumbprint

    with errors_exit():
        if algorithm not in ("EdDSA", "ES256"):
            raise ConfigError(f"--algorithm {algorithm!r} is not EdDSA or ES256", field="--algorithm")
        for path in (out, jwks):
            if path.exists() and not force:
                raise ConfigError(
                    f"{path} already exists", hint="choose another path, or --force to replace it"
                )
        key = (
            Ed25519PrivateKey.generate() if algorithm == "EdDSA" else ec.generate_private_key(ec.SECP256R1())
        )
        if force:
            out.unlink(missing_ok=True)
        write_issuer_key(key, out, passphrase_from_env(passphrase_env))
        write_jwks(key, jwks)
    stdout.print(f"private key {out} (mode 0600)")
    stdout.print(f"JWKS        {jwks} (kid {jwk_thumbprint(key.public_key())}, {algorithm})", soft_wrap=True)
