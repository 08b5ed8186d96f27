"""An independent witness (`comity witness serve`, its own process) admits the gateway client
certificates of the federation version in use, from the next TLS handshake: a new certificate only
once a version pinning it is in use, the old one no longer once a version drops it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from federation_text import format2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from ngo_witness import independent_witness
from served import listening, wait_for

from comity.core.pki import CertificateAuthority, IssuedCertificate
from comity.sdk.demo.run import running_federation
from comity.sdk.demo.setup import build_demo_federation, free_ports

pytestmark = pytest.mark.asyncio

COMITY = str(Path(sys.executable).parent / "comity")


async def _admitted(port: int, trusted: bytes, cert: IssuedCertificate) -> bool:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=trusted, private_key=cert.private_key_pem, certificate_chain=cert.certificate_pem
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        try:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def _serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [COMITY, "witness", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env={**os.environ, "GRPC_VERBOSITY": "NONE"},
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def _publish(file: Path, text: str) -> None:
    staged = file.with_name("federation.next.toml")
    staged.write_text(text)
    os.replace(staged, file)


async def test_an_independent_witness_follows_the_gateway_client_certificate_pins(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=5, seed=19)
    (port,) = free_ports(1)
    entry, config = independent_witness(fed.directory, port)
    file = fed.layout.federation_file
    text = format2(file.read_text()) + entry
    file.write_text(text)
    g = fed.layout.gateway
    old = IssuedCertificate.load(g.client_cert, g.client_key)
    new = CertificateAuthority.load(g.ca_cert, g.ca_key).issue_client("gateway", now=datetime.now(UTC))
    trusted = (fed.directory / "pki" / "ngo" / "witness.crt").read_bytes()
    log = tmp_path / "witness.log"

    async with running_federation(fed):
        process = _serve(config, log)
        try:
            await asyncio.to_thread(wait_for, lambda: listening(port), "the witness listening", 60)
            assert await _admitted(port, trusted, old)
            assert not await _admitted(port, trusted, new)

            both = g.client_cert.with_name("client.pinned.crt")
            both.write_bytes(new.certificate_pem + old.certificate_pem)
            rel = g.client_cert.relative_to(fed.directory).as_posix()
            overlap = text.replace("\nversion = 1\n", "\nversion = 2\n", 1)
            overlap = overlap.replace(f'"{rel}"', f'"{both.relative_to(fed.directory).as_posix()}"')
            overlap = overlap.replace(f'"{old.fingerprint}"', f'["{new.fingerprint}", "{old.fingerprint}"]')
            assert overlap.count(new.fingerprint) == 1
            _publish(file, overlap)
            await asyncio.to_thread(wait_for, lambda: "now version 2" in log.read_text(), "version 2", 20)
            assert await _admitted(port, trusted, new)
            assert await _admitted(port, trusted, old)

            only_new = text.replace("\nversion = 1\n", "\nversion = 3\n", 1)
            only_new = only_new.replace(f'"{rel}"', f'"{both.relative_to(fed.directory).as_posix()}"')
            only_new = only_new.replace(f'"{old.fingerprint}"', f'"{new.fingerprint}"')
            both.write_bytes(new.certificate_pem)
            _publish(file, only_new)
            await asyncio.to_thread(wait_for, lambda: "now version 3" in log.read_text(), "version 3", 20)
            assert not await _admitted(port, trusted, old)
            assert await _admitted(port, trusted, new)
            assert "Traceback" not in log.read_text()
        finally:
            _stop(process)
