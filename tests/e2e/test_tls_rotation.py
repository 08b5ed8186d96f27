"""TLS certificates replaced while the gateway and the nodes run (real processes, real TLS on loopback).

A node's own certificate and key change on disk: a pair whose key does not belong to its
certificate, then a certificate the federation version in use does not pin, are refused with an
ALERT and the old certificate is still the one presented; once a signed version pins the new
one, the node presents it from the next handshake, and queries are answered throughout.

The gateway's client certificate is replaced by an overlap: a version that pins both the old and
the new one (the node then admits the new one, and not before), the gateway's files replaced (it
shows the new one on new channels), then a version without the old one (which the node then
refuses).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from served import wait_for
from signed_demo import SignedDemo, signed_demo

from comity.core.pki import CertificateAuthority, IssuedCertificate
from comity.sdk.demo.run import Outcome, run_scenario, scenarios
from comity.sdk.profile import load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedDemo]:
    with signed_demo(Path(tmp_path_factory.mktemp("tls-rotation")), seed=17) as demo:
        yield demo


@dataclass
class Published:
    """The federation file in use (before signing) and its version: each test edits the last one."""

    text: str
    version: int = 1


@pytest.fixture(scope="module")
def published(running: SignedDemo) -> Published:
    return Published(running.original)


async def _publish(running: SignedDemo, published: Published, text: str) -> str:
    """Publish ``text`` as the next version; returns what every server logs once it uses it."""
    published.text, published.version = text, published.version + 1
    running.publish(running.version(text, published.version), signer=running.signer)
    return f"now version {published.version}"


def _presented(port: int, client: tuple[Path, Path]) -> str:
    """SHA-256 of the certificate a TLS handshake with 127.0.0.1:``port`` is answered with."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only looking at what is presented
    context.set_alpn_protocols(["h2"])
    context.load_cert_chain(*client)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, context.wrap_socket(sock) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


async def _admitted(port: int, trusted: bytes, cert: IssuedCertificate) -> bool:
    """Whether the node on ``port`` completes a handshake with ``cert`` as the client certificate
    (a health check over its TLS port, which carries no per-call check of its own)."""
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


async def _query(running: SignedDemo, agency: str, title: str) -> Outcome:
    s = next(x for x in scenarios(running.fed) if x.title.startswith(title))
    async with load_profile(running.fed.profiles[agency]).async_client() as client:
        return await run_scenario(client, running.fed, s)


async def _answered(running: SignedDemo) -> None:
    """Both demo queries (one to each node) are answered."""
    for agency, title in (("ca.rcmp", "RCMP fetches"), ("us.fbi", "FBI asks")):
        for _ in range(60):  # a node's channel may still be connecting after a restart of the demo
            outcome = await _query(running, agency, title)
            if outcome.result is not None:
                break
            await asyncio.sleep(0.2)
        assert outcome.result is not None, f"{title!r} not answered: {outcome.error}"


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` as a secret's files are rewritten: a new file renamed over the old one."""
    staged = path.with_name(path.name + ".next")
    staged.write_bytes(data)
    os.replace(staged, path)


async def _said(running: SignedDemo, name: str, *words: str) -> None:
    """Wait until one line of server ``name``'s log holds all of ``words``."""

    def holds() -> bool:
        return any(all(w in line for w in words) for line in running.said(name).splitlines())

    await asyncio.to_thread(wait_for, holds, f"{name} saying {words}", 20)


def _rel(running: SignedDemo, path: Path) -> str:
    return path.resolve().relative_to(running.fed.layout.federation_file.parent.resolve()).as_posix()


async def test_a_node_certificate_is_replaced_on_disk_without_a_restart(
    running: SignedDemo, published: Published
) -> None:
    layout = running.fed.layout
    files = layout.nodes["us-node"]
    client = (layout.gateway.client_cert, layout.gateway.client_key)
    old_fp = hashlib.sha256(ssl.PEM_cert_to_DER_cert(files.tls_cert.read_text())).hexdigest()
    await _answered(running)
    assert await asyncio.to_thread(_presented, files.port, client) == old_fp
    ca = CertificateAuthority.load(files.ca_cert, files.ca_key)
    new = ca.issue_server("us-node", names=["127.0.0.1", "localhost"], now=NOW)
    old_pem = files.tls_cert.read_bytes()

    # The new certificate beside the old key: refused, the old pair still served.
    _replace(files.tls_cert, new.certificate_pem)
    assert await asyncio.to_thread(_presented, files.port, client) == old_fp
    await _said(running, "us-node", "ALERT: TLS certificate", "us-node.crt", "does not belong to certificate")
    await _answered(running)

    # Its key too, but version 1 does not pin the new certificate: refused, the old one served.
    _replace(files.tls_key, new.private_key_pem)
    assert await asyncio.to_thread(_presented, files.port, client) == old_fp
    await _said(
        running,
        "us-node",
        "ALERT: TLS certificate",
        f"fingerprint is sha256:{new.fingerprint}",
        f"the federation pins sha256:{old_fp} (federation version 1)",
    )
    await _answered(running)
    assert "Traceback" not in running.said("us-node")

    # Version 2 pins both (the file it names holds both): the new pair is served from the next
    # handshake, and the gateway, trusting both, goes on reaching the node.
    bundle = files.tls_cert.with_name("us-node.pinned.crt")
    bundle.write_bytes(new.certificate_pem + old_pem)
    text = published.text.replace(f'"{_rel(running, files.tls_cert)}"', f'"{_rel(running, bundle)}"')
    text = text.replace(f'"{old_fp}"', f'["{new.fingerprint}", "{old_fp}"]')
    assert text.count(new.fingerprint) == 1
    now_in_use = await _publish(running, published, text)
    for name in ("us-node", "gateway"):
        await _said(running, name, now_in_use)
    assert await asyncio.to_thread(_presented, files.port, client) == new.fingerprint
    await _said(running, "us-node", f"now serving {new.fingerprint[:16]}")
    await _answered(running)

    # The old certificate dropped: the node's file (the new certificate) alone, pinned alone.
    text = text.replace(f'"{_rel(running, bundle)}"', f'"{_rel(running, files.tls_cert)}"')
    text = text.replace(f'["{new.fingerprint}", "{old_fp}"]', f'"{new.fingerprint}"')
    now_in_use = await _publish(running, published, text)
    for name in ("us-node", "gateway"):
        await _said(running, name, now_in_use)
    await _answered(running)
    assert await asyncio.to_thread(_presented, files.port, client) == new.fingerprint
    assert "does not pin certificate" not in running.said("us-node")


async def test_the_gateway_client_certificate_is_replaced_by_an_overlap(
    running: SignedDemo, published: Published
) -> None:
    layout = running.fed.layout
    g, node = layout.gateway, layout.nodes["ca-node"]
    trusted = node.tls_cert.read_bytes()
    old = IssuedCertificate.load(g.client_cert, g.client_key)
    new = CertificateAuthority.load(g.ca_cert, g.ca_key).issue_client("gateway", now=NOW)
    text = published.text
    await _answered(running)
    assert await _admitted(node.port, trusted, old)
    assert not await _admitted(node.port, trusted, new)  # the version in use does not pin it

    # The overlap: a version pinning both, its client_cert file holding both.
    both = g.client_cert.with_name("client.pinned.crt")
    both.write_bytes(new.certificate_pem + old.certificate_pem)
    overlap = text.replace(f'"{_rel(running, g.client_cert)}"', f'"{_rel(running, both)}"')
    overlap = overlap.replace(f'"{old.fingerprint}"', f'["{new.fingerprint}", "{old.fingerprint}"]')
    assert overlap.count(new.fingerprint) == 1
    now_in_use = await _publish(running, published, overlap)
    for name in ("ca-node", "gateway"):
        await _said(running, name, now_in_use)
    assert await _admitted(node.port, trusted, new)
    assert await _admitted(node.port, trusted, old)

    # The gateway's own files: new channels to the nodes show the new certificate.
    _replace(g.client_key, new.private_key_pem)
    _replace(g.client_cert, new.certificate_pem)
    await _said(running, "gateway", f"new channels show {new.fingerprint[:16]}")
    await _answered(running)

    # A version without the old certificate: the node refuses it, the gateway is still served.
    only_new = text.replace(f'"{old.fingerprint}"', f'"{new.fingerprint}"')
    now_in_use = await _publish(running, published, only_new)
    for name in ("ca-node", "us-node", "gateway"):
        await _said(running, name, now_in_use)
    assert not await _admitted(node.port, trusted, old)
    assert await _admitted(node.port, trusted, new)
    await _answered(running)
