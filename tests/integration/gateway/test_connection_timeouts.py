"""Stalled connections are closed: one that never finishes its TLS handshake, and one left idle."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from comity.core.bootstrap import init_federation
from comity.core.grpcopts import server_options
from comity.core.serving import start_server
from comity.core.tls import gateway_server_credentials

# Generous: the server must close the stalled connection long before this.
_BOUND = 20.0


def test_servers_set_idle_and_handshake_timeouts() -> None:
    options = dict(server_options(idle_timeout=30, handshake_timeout=2))
    assert options["grpc.max_connection_idle_ms"] == 30_000
    assert options["grpc.server_handshake_timeout_ms"] == 2_000


@pytest.mark.asyncio
async def test_a_connection_that_never_handshakes_is_closed(tmp_path: Path) -> None:
    layout = init_federation(tmp_path / "fed", gateway_port=1, countries={"US": 2, "CA": 3})
    handle = await start_server(
        listen="127.0.0.1:0",
        register=lambda server: None,
        service_names=[],
        credentials=gateway_server_credentials(layout.gateway.tls_cert, layout.gateway.tls_key),
        handshake_timeout=0.5,
    )
    try:
        stalled = [await asyncio.open_connection("127.0.0.1", handle.port) for _ in range(20)]
        for reader, writer in stalled:
            # Nothing is sent; the server must hang up (EOF) on its own.
            assert await asyncio.wait_for(reader.read(1024), _BOUND) == b""
            writer.close()
    finally:
        await handle.stop(0)


@pytest.mark.asyncio
async def test_an_idle_connection_is_closed(tmp_path: Path) -> None:
    layout = init_federation(tmp_path / "fed", gateway_port=1, countries={"US": 2, "CA": 3})
    handle = await start_server(
        listen="127.0.0.1:0",
        register=lambda server: None,
        service_names=[],
        credentials=gateway_server_credentials(layout.gateway.tls_cert, layout.gateway.tls_key),
        idle_timeout=1.0,
    )
    creds = grpc.ssl_channel_credentials(root_certificates=layout.gateway.ca_cert.read_bytes())
    try:
        async with grpc.aio.secure_channel(f"127.0.0.1:{handle.port}", creds) as channel:
            await asyncio.wait_for(channel.channel_ready(), _BOUND)
            # The server sends GOAWAY after the idle time; the channel leaves READY.
            state = channel.get_state()
            while state == grpc.ChannelConnectivity.READY:
                await asyncio.wait_for(channel.wait_for_state_change(state), _BOUND)
                state = channel.get_state()
            assert state != grpc.ChannelConnectivity.READY
    finally:
        await handle.stop(0)
