"""An independent witness (an NGO) for the federation file, its process (`comity witness serve`), and
waiting for its cosignatures in a running federation's quorum."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from federation_text import START

from comity.audit import events
from comity.core.keys import SigningKey
from comity.core.pki import CertificateAuthority
from comity.sdk.demo.run import RunningFederation

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


def serve_witness(config: Path, log: Path | None = None) -> subprocess.Popen[bytes]:
    """``comity witness serve --config CONFIG``, its stderr appended to ``log`` (piped without)."""
    command = [COMITY, "witness", "serve", "--config", str(config)]
    env = {**os.environ, "GRPC_VERBOSITY": "NONE"}
    if log is None:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=out, env=env)


def stop_witness(process: subprocess.Popen[bytes] | None) -> None:
    """Stop a witness started with :func:`serve_witness` (nothing if it was not started)."""
    if process is not None:
        process.terminate()
        process.wait(timeout=30)


async def append_entry(running: RunningFederation, tag: str) -> int:
    """Append one entry to the running gateway's log; the log's size with it."""
    entry = events.failed_event(
        query_id=f"q-{tag}", query_digest=b"\0" * 32, node="us-node", reason="TEST", at=datetime.now(UTC)
    )
    return (await running.gateway.ledger.record(entry)).tree_size


async def quorum_with_ngo(running: RunningFederation, size: int, *, limit: float = 40.0) -> int:
    """The newest quorum checkpoint's size once it covers ``size``; the NGO's cosignature is in it."""
    loop = running.gateway.witnessing
    assert loop is not None
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        quorum = loop.status.quorum_size or 0
        if quorum >= size:
            by_size = dict(await asyncio.to_thread(running.gateway.ledger.log.store.cosigners))
            assert NGO in loop.quorum_ids(by_size[quorum]), by_size[quorum]
            return quorum
        await asyncio.sleep(0.1)
    raise AssertionError(f"no quorum checkpoint covering size {size}: {loop.status.detail()}")
