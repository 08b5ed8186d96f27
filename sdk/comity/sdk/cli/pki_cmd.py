"""``comity pki``: a country's certificate authority and the TLS certificates it issues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from comity.core.errors import ConfigError
from comity.core.pki import CertificateAuthority, IssuedCertificate, fingerprint, load_certificate
from comity.sdk.cli._common import errors_exit, passphrase_from_env, stdout

__all__ = ["app"]

app = typer.Typer(help="Certificate authorities and TLS certificates (ECDSA P-256).", no_args_is_help=True)

PassphraseEnv = Annotated[
    str | None, typer.Option(help="Environment variable holding the passphrase of the keys (CA's and new).")
]
CaDir = Annotated[Path, typer.Option(help="Folder holding ca.crt and ca.key.")]
OutDir = Annotated[Path, typer.Option(help="Folder to write NAME.crt and NAME.key into.")]
Days = Annotated[int, typer.Option(min=1, help="Validity in days.")]


@app.command("ca")
def ca(
    name: Annotated[
        str, typer.Argument(help="The CA's common name, e.g. 'Comity GB certificate authority'.")
    ],
    out_dir: OutDir = Path("."),
    country: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2 country.")] = "",
    passphrase_env: PassphraseEnv = None,
) -> None:
    """Create a certificate authority: ca.crt (give to peers) and ca.key (keep offline)."""
    with errors_exit():
        _refuse_overwrite(out_dir / "ca.key")
        authority = CertificateAuthority.create(name, country=country, now=datetime.now(UTC))
        authority.issued.save(
            out_dir / "ca.crt", out_dir / "ca.key", passphrase=passphrase_from_env(passphrase_env)
        )
    _report(out_dir / "ca.crt", authority.issued)


@app.command("server")
def server(
    name: Annotated[str, typer.Argument(help="Common name and file name, e.g. gb-node.")],
    san: Annotated[list[str], typer.Option(help="DNS name or IP address (repeat).")],
    ca_dir: CaDir,
    out_dir: OutDir = Path("."),
    days: Days = 397,
    passphrase_env: PassphraseEnv = None,
) -> None:
    """Issue a TLS server certificate (for a node, or for the gateway's investigator port)."""
    with errors_exit():
        secret = passphrase_from_env(passphrase_env)
        authority = CertificateAuthority.load(ca_dir / "ca.crt", ca_dir / "ca.key", passphrase=secret)
        _refuse_overwrite(out_dir / f"{name}.key")
        issued = authority.issue_server(
            name, names=san, now=datetime.now(UTC), valid_for=timedelta(days=days)
        )
        issued.save(out_dir / f"{name}.crt", out_dir / f"{name}.key", passphrase=secret)
    _report(out_dir / f"{name}.crt", issued)


@app.command("client")
def client(
    name: Annotated[str, typer.Argument(help="Common name and file name, e.g. gateway-client.")],
    ca_dir: CaDir,
    out_dir: OutDir = Path("."),
    days: Days = 397,
    passphrase_env: PassphraseEnv = None,
) -> None:
    """Issue a TLS client certificate (the gateway's, shown to nodes)."""
    with errors_exit():
        secret = passphrase_from_env(passphrase_env)
        authority = CertificateAuthority.load(ca_dir / "ca.crt", ca_dir / "ca.key", passphrase=secret)
        _refuse_overwrite(out_dir / f"{name}.key")
        issued = authority.issue_client(name, now=datetime.now(UTC), valid_for=timedelta(days=days))
        issued.save(out_dir / f"{name}.crt", out_dir / f"{name}.key", passphrase=secret)
    _report(out_dir / f"{name}.crt", issued)


@app.command("fingerprint")
def show_fingerprint(cert: Annotated[Path, typer.Argument(help="A PEM certificate.")]) -> None:
    """Print a certificate's SHA-256 fingerprint, as the federation file pins it."""
    with errors_exit():
        stdout.print(fingerprint(load_certificate(cert)), soft_wrap=True)


def _refuse_overwrite(path: Path) -> None:
    if path.exists():
        raise ConfigError(f"{path} already exists", hint="move it away first; keys are never overwritten")


def _report(cert_path: Path, issued: IssuedCertificate) -> None:
    stdout.print(f"certificate {cert_path}")
    stdout.print(f"valid until {issued.certificate.not_valid_after_utc.isoformat()}")
    stdout.print(f"sha256      {issued.fingerprint}", soft_wrap=True)
