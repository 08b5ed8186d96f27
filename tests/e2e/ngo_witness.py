"""An independent witness (an NGO) for the federation file, and its process (`comity witness serve`)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from federation_text import START

from comity.core.keys import SigningKey
from comity.core.pki import CertificateAuthority

COMITY = str(Path(sys.executable).parent / "comity")
NGO = "witness.example-ngo"


def independent_witness(directory: Path, port: int) -> tuple[str, Path]:
    """The NGO's key, certificate and config; returns its federation entry and a policy that needs it,
    and its config's path."""
    now = datetime.now(UTC)
    pki = directory / "pki" / "ngo"
    ca = CertificateAuthority.create("Example NGO CA", now=now)
    cert = ca.issue_server(NGO, names=["127.0.0.1", "localhost"], now=now)
    cert.save(pki / "witness.crt", pki / "witness.key")
    key = SigningKey.generate(NGO)
    key.save(directory / "keys" / "ngo" / "witness.key")
    entry = f"""
[[witnesses]]
id = "{NGO}"
name = "Example Transparency Foundation"
endpoint = "127.0.0.1:{port}"
tls_cert = "pki/ngo/witness.crt"
tls_cert_sha256 = "{cert.fingerprint}"
[[witnesses.keys]]
key = "{key.verifying_key.to_text()}"
valid_from = {START}

[witness_policy]
max_delay = "30s"
[[witness_policy.groups]]
country = "US"
[[witness_policy.groups]]
country = "CA"
[[witness_policy.groups]]
name = "independent"
witnesses = ["{NGO}"]
"""
    config = directory / "configs" / "witness.toml"
    config.write_text(
        f"""[witness]
id = "{NGO}"
listen = "127.0.0.1:{port}"
federation = "../federation.toml"
state = "../data/ngo-witness.db"

[keys]
witness_key = "../keys/ngo/witness.key"

[tls]
cert = "../pki/ngo/witness.crt"
key = "../pki/ngo/witness.key"
"""
    )
    return entry, config


def serve_witness(config: Path) -> subprocess.Popen[bytes]:
    """``comity witness serve --config CONFIG``, its stderr piped."""
    return subprocess.Popen(
        [COMITY, "witness", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "GRPC_VERBOSITY": "NONE"},
    )
