"""Certificates followed on disk and trust following the federation version, on real grpc.aio servers.

Each server here is a probe on 127.0.0.1:0 with :class:`ServerTls` credentials; what it presents is
read with the ``ssl`` module, what it admits with a real gRPC call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from comity.core.bootstrap import FederationLayout, init_federation
from comity.core.errors import ConfigError
from comity.core.federation import Federation
from comity.core.pki import CertificateAuthority, IssuedCertificate
from comity.core.tls import investigator_channel_credentials
from comity.core.tls_reload import GatewayClientTls, ServerTls

NOW = datetime.now(UTC)
WHO = "/comity.test.Probe/Who"


@pytest.fixture
def layout(tmp_path: Path) -> FederationLayout:
    return init_federation(tmp_path / "fed", gateway_port=1, countries={"US": 2, "CA": 3}, now=NOW)


@pytest.fixture
def fed(layout: FederationLayout) -> Federation:
    return Federation.load(layout.federation_file)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[ServerTls], object]]:
    servers: list[grpc.aio.Server] = []

    async def start(tls: ServerTls) -> int:
        async def who(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            return b"ok"

        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "comity.test.Probe", {"Who": grpc.unary_unary_rpc_method_handler(who)}
                )
            ]
        )
        port = server.add_secure_port("127.0.0.1:0", tls.credentials())
        await server.start()
        servers.append(server)
        return port

    yield start
    for s in servers:
        await s.stop(0)


def _presented(port: int, client: IssuedCertificate | None = None, *, folder: Path) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only looking at what is presented
    context.set_alpn_protocols(["h2"])
    if client is not None:
        cert, key = folder / "probe.crt", folder / "probe.key"
        client.save(cert, key)
        context.load_cert_chain(cert, key)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, context.wrap_socket(sock) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


async def _admitted(port: int, credentials: grpc.ChannelCredentials) -> bool:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        try:
            await channel.unary_unary(WHO)(b"", timeout=5)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            return False
    return True


def _replace(path: Path, data: bytes) -> None:
    staged = path.with_name(path.name + ".next")
    staged.write_bytes(data)
    os.replace(staged, path)


def _version(layout: FederationLayout, fed: Federation, text: str, version: int) -> Federation:
    """``text`` (the federation file, edited) as ``version``."""
    text = text.replace(f"version = {fed.version}\n", f"version = {version}\n", 1)
    return Federation.from_toml_text(text, base=layout.directory)


def _pinning(layout: FederationLayout, what: Path, old: str, certs: list[IssuedCertificate]) -> str:
    """The federation file with the entry of certificate file ``what`` (pinned as ``old``) naming a
    file that holds ``certs``, each pinned, in that order."""
    bundle = what.with_name(f"{what.stem}.{len(certs)}.pinned.crt")
    bundle.write_bytes(b"".join(c.certificate_pem for c in certs))
    text = layout.federation_file.read_text()
    rel = what.relative_to(layout.directory).as_posix()
    assert f'"{rel}"' in text and f'"{old}"' in text
    pins = ", ".join(f'"{c.fingerprint}"' for c in certs)
    return text.replace(f'"{rel}"', f'"{bundle}"').replace(f'"{old}"', f"[{pins}]")


def _node_tls(layout: FederationLayout, fed: Federation, *, passphrase: bytes | None = None) -> ServerTls:
    files = layout.nodes["us-node"]
    return ServerTls.node(
        files.tls_cert, files.tls_key, federation=fed, node_id="us-node", passphrase=passphrase
    )


def _issue_node(layout: FederationLayout) -> IssuedCertificate:
    files = layout.nodes["us-node"]
    return CertificateAuthority.load(files.ca_cert, files.ca_key).issue_server(
        "us-node", names=["127.0.0.1", "localhost"], now=NOW
    )


def _alerts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT")]


# ---------------------------------------------------------------------- a server's own pair


async def test_a_passphrase_protected_key_rotates_with_the_passphrase_given_at_start(
    layout: FederationLayout, fed: Federation, serve: Callable[[ServerTls], object], tmp_path: Path
) -> None:
    files = layout.nodes["us-node"]
    old = IssuedCertificate.load(files.tls_cert, files.tls_key)
    old.save(files.tls_cert, files.tls_key, passphrase=b"s3cret")
    with pytest.raises(ConfigError, match="encrypted"):
        _node_tls(layout, fed)
    tls = _node_tls(layout, fed, passphrase=b"s3cret")
    port: int = await serve(tls)  # type: ignore[misc]
    client = IssuedCertificate.load(layout.gateway.client_cert, layout.gateway.client_key)
    assert await asyncio.to_thread(_presented, port, client, folder=tmp_path) == old.fingerprint

    new = _issue_node(layout)
    tls.prepared(_version(layout, fed, _pinning(layout, files.tls_cert, old.fingerprint, [new, old]), 2))()
    new.save(files.tls_cert, files.tls_key.with_suffix(".next"), passphrase=b"s3cret")
    os.replace(files.tls_key.with_suffix(".next"), files.tls_key)
    assert await asyncio.to_thread(_presented, port, client, folder=tmp_path) == new.fingerprint


async def test_a_new_version_that_no_longer_pins_the_served_certificate_is_said_with_an_alert(
    layout: FederationLayout,
    fed: Federation,
    serve: Callable[[ServerTls], object],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    files = layout.nodes["us-node"]
    tls = _node_tls(layout, fed)
    port: int = await serve(tls)  # type: ignore[misc]
    old = IssuedCertificate.load(files.tls_cert, files.tls_key)
    new = _issue_node(layout)
    with caplog.at_level(logging.WARNING, logger="comity.core.tls"):
        tls.prepared(_version(layout, fed, _pinning(layout, files.tls_cert, old.fingerprint, [new]), 2))()
        client = IssuedCertificate.load(layout.gateway.client_cert, layout.gateway.client_key)
        # Nothing better to serve: the old one still is, and the operator is told.
        assert await asyncio.to_thread(_presented, port, client, folder=tmp_path) == old.fingerprint
    (alert,) = _alerts(caplog)
    assert f"does not pin certificate {old.fingerprint[:16]}" in alert and "version 2" in alert


async def test_the_gateways_server_certificate_rotates_for_investigators(
    layout: FederationLayout, fed: Federation, serve: Callable[[ServerTls], object], tmp_path: Path
) -> None:
    g = layout.gateway
    tls = ServerTls.gateway(g.tls_cert, g.tls_key, federation=fed)
    port: int = await serve(tls)  # type: ignore[misc]
    old = IssuedCertificate.load(g.tls_cert, g.tls_key)
    new = CertificateAuthority.load(g.ca_cert, g.ca_key).issue_server(
        "gateway", names=["127.0.0.1", "localhost"], now=NOW
    )
    both = _version(layout, fed, _pinning(layout, g.tls_cert, old.fingerprint, [new, old]), 2)
    tls.prepared(both)()
    _replace(g.tls_key, new.private_key_pem)
    _replace(g.tls_cert, new.certificate_pem)
    assert await asyncio.to_thread(_presented, port, folder=tmp_path) == new.fingerprint
    # An investigator holding the version that pins both reaches it (the name checked, as always).
    credentials = investigator_channel_credentials(both)
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{port}", credentials, options=[("grpc.ssl_target_name_override", "localhost")]
    ) as channel:
        assert await channel.unary_unary(WHO)(b"", timeout=5) == b"ok"


async def test_a_version_that_does_not_list_the_node_leaves_its_pins_and_takes_the_trust(
    layout: FederationLayout, fed: Federation
) -> None:
    text = layout.federation_file.read_text()
    # Another node of the same country in its place (the country keeps a witness).
    without = _version(layout, fed, text.replace('id = "us-node"', 'id = "us-node-next"'), 2)
    assert all(n.id != "us-node" for n in without.nodes())
    tls = _node_tls(layout, fed)
    before = tls.fingerprint
    tls.prepared(without)()  # no NotFound: the node's own membership decides what it serves
    assert tls.fingerprint == before


# ---------------------------------------------------------------------- the gateway's client certificate


def test_the_gateways_client_certificate_is_taken_only_when_pinned_and_matching(
    layout: FederationLayout, fed: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    g = layout.gateway
    in_use = [fed]
    client = GatewayClientTls(g.client_cert, g.client_key, current=lambda: in_use[-1])
    old = IssuedCertificate.load(g.client_cert, g.client_key)
    ca = CertificateAuthority.load(g.ca_cert, g.ca_key)
    new = ca.issue_client("gateway", now=NOW)
    assert client.identity == old.fingerprint
    assert not client.check()  # nothing changed
    with caplog.at_level(logging.WARNING, logger="comity.core.tls"):
        _replace(g.client_key, new.private_key_pem)
        _replace(g.client_cert, new.certificate_pem)
        assert not client.check()  # not pinned by the version in use
        assert client.identity == old.fingerprint
        assert not client.check()  # the same files, the same version: not read again
        (alert,) = _alerts(caplog)
        assert "gateway client certificate" in alert and f"pins sha256:{old.fingerprint}" in alert
        assert "(federation version 1)" in alert and f"still show certificate {old.fingerprint[:16]}" in alert

        # A version pinning both: the pair on disk is taken (looked at again under it).
        in_use.append(_version(layout, fed, _pinning(layout, g.client_cert, old.fingerprint, [new, old]), 2))
        assert client.check()
        assert client.identity == new.fingerprint

        # A key that does not belong to the certificate: refused, the pair in use kept.
        _replace(g.client_key, ca.issue_client("gateway", now=NOW).private_key_pem)
        assert not client.check()
        assert client.identity == new.fingerprint
        assert "does not belong to certificate" in _alerts(caplog)[-1]
