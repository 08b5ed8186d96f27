"""Mutual TLS with pinned certificates, against real grpc.aio servers on 127.0.0.1:0."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from comity.core.bootstrap import FederationLayout, init_federation
from comity.core.errors import ConfigError, Unauthenticated
from comity.core.federation import Federation
from comity.core.pki import CertificateAuthority, IssuedCertificate
from comity.core.tls import (
    check_peer_certificate,
    gateway_server_credentials,
    investigator_channel_credentials,
    node_channel_credentials,
    node_server_credentials,
    peer_certificate_fingerprint,
)

NOW = datetime.now(UTC)
WHO = "/comity.test.Probe/Who"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(
        tmp_path_factory.mktemp("fed"), gateway_port=1, countries={"US": 2, "CA": 3}, now=NOW
    )


@pytest.fixture(scope="module")
def fed(layout: FederationLayout) -> Federation:
    return Federation.load(layout.federation_file)


@dataclass
class Impostors:
    """Certificates an attacker might hold: from a foreign CA, and a second one from a trusted CA."""

    dir: Path
    foreign_server: IssuedCertificate
    same_ca_server: IssuedCertificate
    same_ca_client: IssuedCertificate

    def save(self, name: str, cert: IssuedCertificate) -> tuple[Path, Path]:
        paths = (self.dir / f"{name}.crt", self.dir / f"{name}.key")
        cert.save(*paths)
        return paths


@pytest.fixture(scope="module")
def impostors(layout: FederationLayout, tmp_path_factory: pytest.TempPathFactory) -> Impostors:
    foreign = CertificateAuthority.create("Mallory CA", now=NOW)
    us_ca = CertificateAuthority.load(layout.nodes["us-node"].ca_cert, layout.nodes["us-node"].ca_key)
    gw_ca = CertificateAuthority.load(layout.gateway.ca_cert, layout.gateway.ca_key)
    return Impostors(
        tmp_path_factory.mktemp("impostors"),
        foreign.issue_server("us-node", names=["127.0.0.1", "localhost"], now=NOW),
        us_ca.issue_server("us-node", names=["127.0.0.1", "localhost"], now=NOW),
        gw_ca.issue_client("gateway", now=NOW),
    )


def _probe_handler(seen: list[str | None]) -> grpc.GenericRpcHandler:
    async def who(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        fingerprint = peer_certificate_fingerprint(context)
        seen.append(fingerprint)
        return (fingerprint or "none").encode()

    return grpc.method_handlers_generic_handler(
        "comity.test.Probe", {"Who": grpc.unary_unary_rpc_method_handler(who)}
    )


@dataclass
class Server:
    port: int
    seen: list[str | None]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[grpc.ServerCredentials], object]]:
    servers: list[grpc.aio.Server] = []

    async def start(credentials: grpc.ServerCredentials) -> Server:
        seen: list[str | None] = []
        server = grpc.aio.server()
        server.add_generic_rpc_handlers([_probe_handler(seen)])
        port = server.add_secure_port("127.0.0.1:0", credentials)
        await server.start()
        servers.append(server)
        return Server(port, seen)

    yield start
    for s in servers:
        await s.stop(0)


async def call(port: int, credentials: grpc.ChannelCredentials) -> str:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        answer: bytes = await channel.unary_unary(WHO)(b"", timeout=5)
        return answer.decode()


def _node_server(layout: FederationLayout, fed: Federation) -> grpc.ServerCredentials:
    files = layout.nodes["us-node"]
    return node_server_credentials(files.tls_cert, files.tls_key, federation=fed, node_id="us-node")


def _gateway_to(
    fed: Federation, layout: FederationLayout, node_id: str = "us-node"
) -> grpc.ChannelCredentials:
    g = layout.gateway
    return node_channel_credentials(fed.node(node_id), g.client_cert, g.client_key)


# ---------------------------------------------------------------------- gateway ↔ node


async def test_the_gateway_reaches_its_node_and_the_node_sees_the_pinned_client(
    layout: FederationLayout, fed: Federation, serve: Callable[..., object]
) -> None:
    server: Server = await serve(_node_server(layout, fed))  # type: ignore[misc]
    assert await call(server.port, _gateway_to(fed, layout)) == fed.gateway.client_cert_sha256
    assert server.seen == [fed.gateway.client_cert_sha256]


async def test_the_node_refuses_a_client_without_a_certificate(
    layout: FederationLayout, fed: Federation, serve: Callable[..., object]
) -> None:
    server: Server = await serve(_node_server(layout, fed))  # type: ignore[misc]
    trust_node = grpc.ssl_channel_credentials(root_certificates=fed.node("us-node").tls_cert.read_bytes())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(server.port, trust_node)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.seen == []


async def test_the_node_refuses_another_certificate_from_the_gateways_own_ca(
    layout: FederationLayout, fed: Federation, impostors: Impostors, serve: Callable[..., object]
) -> None:
    server: Server = await serve(_node_server(layout, fed))  # type: ignore[misc]
    cert, key = impostors.save("client", impostors.same_ca_client)
    credentials = node_channel_credentials(fed.node("us-node"), cert, key)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(server.port, credentials)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.seen == []


@pytest.mark.parametrize("which", ["foreign_server", "same_ca_server"])
async def test_the_gateway_refuses_an_impostor_node(
    layout: FederationLayout,
    fed: Federation,
    impostors: Impostors,
    serve: Callable[..., object],
    which: str,
) -> None:
    cert, key = impostors.save(which, getattr(impostors, which))
    # The impostor would even accept the gateway's client certificate.
    impostor = node_server_credentials(cert, key, federation=fed)
    server: Server = await serve(impostor)  # type: ignore[misc]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(server.port, _gateway_to(fed, layout))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.seen == []


async def test_the_gateway_refuses_the_other_countrys_node(
    layout: FederationLayout, fed: Federation, serve: Callable[..., object]
) -> None:
    files = layout.nodes["ca-node"]
    server: Server = await serve(node_server_credentials(files.tls_cert, files.tls_key, federation=fed))  # type: ignore[misc]
    with pytest.raises(grpc.aio.AioRpcError):
        await call(server.port, _gateway_to(fed, layout, "us-node"))  # dialling us-node, ca-node answers
    assert await call(server.port, _gateway_to(fed, layout, "ca-node")) == fed.gateway.client_cert_sha256


# ---------------------------------------------------------------------- investigator → gateway


async def test_investigators_reach_the_gateway_over_tls_without_a_client_certificate(
    layout: FederationLayout, fed: Federation, serve: Callable[..., object]
) -> None:
    g = layout.gateway
    server: Server = await serve(gateway_server_credentials(g.tls_cert, g.tls_key, federation=fed))  # type: ignore[misc]
    assert await call(server.port, investigator_channel_credentials(fed)) == "none"
    # With only the CA at hand (no pinned certificate file), the CA is trusted instead.
    only_ca = replace(fed.gateway, tls_cert=layout.directory / "absent.crt")
    fed_ca = Federation(name=fed.name, members=fed.members, gateway=only_ca)
    assert await call(server.port, investigator_channel_credentials(fed_ca)) == "none"


# ---------------------------------------------------------------------- pins checked at start-up


def test_a_swapped_certificate_file_stops_start_up(
    layout: FederationLayout, fed: Federation, impostors: Impostors, tmp_path: Path
) -> None:
    cert, _ = impostors.save("swap", impostors.same_ca_server)
    swapped = replace(fed.node("us-node"), tls_cert=cert)
    g = layout.gateway
    with pytest.raises(ConfigError, match="fingerprint"):
        node_channel_credentials(swapped, g.client_cert, g.client_key)


def test_a_node_started_with_another_nodes_certificate_stops(
    layout: FederationLayout, fed: Federation
) -> None:
    files = layout.nodes["ca-node"]
    with pytest.raises(ConfigError, match="fingerprint"):
        node_server_credentials(files.tls_cert, files.tls_key, federation=fed, node_id="us-node")


def test_a_key_that_does_not_match_its_certificate(
    layout: FederationLayout, fed: Federation, tmp_path: Path
) -> None:
    files = layout.nodes["us-node"]
    shutil.copy(layout.nodes["ca-node"].tls_key, tmp_path / "wrong.key")
    with pytest.raises(ConfigError, match="does not belong"):
        node_server_credentials(files.tls_cert, tmp_path / "wrong.key", federation=fed)


class _Context:
    def __init__(self, auth: dict[str, list[bytes]]) -> None:
        self._auth = auth

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


def test_check_peer_certificate(layout: FederationLayout, fed: Federation) -> None:
    pem = layout.gateway.client_cert.read_bytes()
    check_peer_certificate(_Context({"x509_pem_cert": [pem]}), fed.gateway.client_cert_sha256)  # type: ignore[arg-type]
    with pytest.raises(Unauthenticated, match="no TLS client certificate"):
        check_peer_certificate(_Context({}), fed.gateway.client_cert_sha256)  # type: ignore[arg-type]
    other = layout.gateway.tls_cert.read_bytes()
    with pytest.raises(Unauthenticated, match="not the one the federation pins"):
        check_peer_certificate(_Context({"x509_pem_cert": [other]}), [fed.gateway.client_cert_sha256])  # type: ignore[arg-type]


# ---------------------------------------------------------------------- replacing a certificate


def _rotating(layout: FederationLayout, fed: Federation, new_node: Path, new_client: Path) -> Federation:
    """The federation while us-node's certificate and the gateway's client certificate are replaced."""
    from comity.core.pki import fingerprint, load_certificate

    text = layout.federation_file.read_text()
    for old, new in ((fed.node("us-node").tls_cert, new_node), (fed.gateway.client_cert, new_client)):
        bundle = new.with_suffix(".bundle.crt")
        bundle.write_bytes(new.read_bytes() + old.read_bytes())
        old_fp, new_fp = fingerprint(load_certificate(old)), fingerprint(load_certificate(new))
        text = text.replace(f'"{old.relative_to(layout.directory.resolve()).as_posix()}"', f'"{bundle}"')
        text = text.replace(f'"{old_fp}"', f'["{new_fp}", "{old_fp}"]')
    return Federation.from_toml_text(text, base=layout.directory)


async def test_while_replacing_certificates_both_old_and_new_are_accepted(
    layout: FederationLayout, fed: Federation, impostors: Impostors, serve: Callable[..., object]
) -> None:
    node_cert, node_key = impostors.save("next-node", impostors.same_ca_server)
    client_cert, client_key = impostors.save("next-client", impostors.same_ca_client)
    rotating = _rotating(layout, fed, node_cert, client_cert)
    assert len(rotating.node("us-node").pins) == len(rotating.gateway.client_pins) == 2
    old = layout.nodes["us-node"]
    servers: list[Server] = [
        await serve(node_server_credentials(c, k, federation=rotating, node_id="us-node"))  # type: ignore[misc]
        for c, k in ((old.tls_cert, old.tls_key), (node_cert, node_key))
    ]
    g = layout.gateway
    for server in servers:
        for cert, key in ((g.client_cert, g.client_key), (client_cert, client_key)):
            assert await call(server.port, node_channel_credentials(rotating.node("us-node"), cert, key))
    # The old federation, which pins only the old certificates, still refuses the new ones.
    with pytest.raises(grpc.aio.AioRpcError):
        await call(servers[1].port, _gateway_to(fed, layout))


def test_a_certificate_file_with_an_unpinned_certificate_is_refused(
    layout: FederationLayout, fed: Federation, impostors: Impostors
) -> None:
    cert, _ = impostors.save("extra", impostors.foreign_server)
    bundle = impostors.dir / "mixed.crt"
    bundle.write_bytes(fed.node("us-node").tls_cert.read_bytes() + cert.read_bytes())
    mixed = replace(fed.node("us-node"), tls_cert=bundle)
    g = layout.gateway
    with pytest.raises(ConfigError, match="fingerprint"):
        node_channel_credentials(mixed, g.client_cert, g.client_key)
