"""The gateway's node channels: a call waits for its channel to connect, and a new federation
version replaces the channels of the nodes it moves, in one step (real gRPC servers on loopback)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import grpc
import pytest

from comity.core import errors
from comity.gateway.node_channels import NodeChannels, NodeEndpoint, NodeUnavailable, Unroutable
from comity.gateway.routing import NodeRouter
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio

_LOCAL = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _serve(port: int) -> grpc.aio.Server:
    server = grpc.aio.server()
    server.add_secure_port(
        f"127.0.0.1:{port}", grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    )
    await server.start()
    return server


def _endpoint(port: int, *, trust: str = "a") -> NodeEndpoint:
    return NodeEndpoint("us-node", f"127.0.0.1:{port}", _LOCAL, trust=trust)


@pytest.fixture
async def live() -> AsyncIterator[int]:
    port = _free_port()
    server = await _serve(port)
    yield port
    await server.stop(0)


async def test_a_call_waits_for_a_node_that_starts_listening() -> None:
    port = _free_port()
    channels = NodeChannels({"us-node": _endpoint(port)}, deadline=60)
    try:
        waiting = asyncio.create_task(channels.ready("us-node"))
        await asyncio.sleep(0.5)  # nothing listens yet: the channel is failing to connect
        assert not waiting.done()
        server = await _serve(port)
        try:
            route, left = await asyncio.wait_for(waiting, 30)
            assert route.endpoint.address == f"127.0.0.1:{port}" and 0 < left <= 60
        finally:
            await server.stop(0)
    finally:
        await channels.close()


async def test_a_node_not_reached_gets_nothing_and_is_told_so() -> None:
    channels = NodeChannels({"us-node": _endpoint(_free_port())}, deadline=0.4)
    try:
        with pytest.raises(NodeUnavailable, match=r"could not be reached within 0\.2 s, so nothing was sent"):
            await channels.ready("us-node")
    finally:
        await channels.close()


async def test_a_call_waiting_on_a_moved_node_goes_to_its_new_endpoint(live: int) -> None:
    channels = NodeChannels({"us-node": _endpoint(_free_port())}, deadline=60)
    try:
        waiting = asyncio.create_task(channels.ready("us-node"))
        await asyncio.sleep(0.3)
        old = channels._routes["us-node"]
        channels.replace({"us-node": _endpoint(live)})
        # Without the move it would wait 30 s and fail; it connects to the new endpoint instead.
        route, _ = await asyncio.wait_for(waiting, 20)
        assert route.endpoint.address == f"127.0.0.1:{live}"
        assert route is not old
    finally:
        await channels.close()
    assert isinstance(old, type(route)) and old.channel.get_state() == grpc.ChannelConnectivity.SHUTDOWN


async def test_a_new_version_keeps_unchanged_channels_and_replaces_changed_ones(live: int) -> None:
    other = f"127.0.0.1:{_free_port()}"
    channels = NodeChannels(
        {
            "us-node": _endpoint(live),
            "ca-node": NodeEndpoint("ca-node", other, _LOCAL, trust="c"),
        },
        deadline=10,
    )
    try:
        us, ca = channels._routes["us-node"], channels._routes["ca-node"]
        channels.replace(
            {
                "us-node": _endpoint(live),  # same place: same channel
                "ca-node": NodeEndpoint("ca-node", other, _LOCAL, trust="new pin"),
                "gb-node": NodeEndpoint("gb-node", f"127.0.0.1:{live}", _LOCAL),
            }
        )
        assert channels._routes["us-node"] is us
        assert channels._routes["ca-node"] is not ca  # another certificate trusted: another channel
        assert channels.known() == ("ca-node", "gb-node", "us-node")
        route, _ = await channels.ready("gb-node")  # an added node is routed to
        assert route.endpoint.node_id == "gb-node"

        refused = errors.Unavailable("not routed")
        channels.replace({"us-node": Unroutable("us-node", refused)})
        with pytest.raises(errors.Unavailable, match="not routed"):
            await channels.ready("us-node")
        with pytest.raises(errors.NotFound, match="unknown node 'ca-node'"):
            await channels.ready("ca-node")  # removed
        assert not channels.knows("gb-node")
    finally:
        await channels.close()
    for removed in (us, ca):
        assert isinstance(removed, type(route))
        assert removed.channel.get_state() == grpc.ChannelConnectivity.SHUTDOWN


async def test_a_node_that_cannot_be_routed_to_keeps_a_witness_stub_whose_calls_say_why() -> None:
    # Building the witnessing set of a new version must not fail on such a node (the version is
    # swapped in as a whole), only its calls.
    refused = errors.Unavailable("its certificate is not pinned")
    router = NodeRouter({"us-node": Unroutable("us-node", refused)}, deadline=5)
    try:
        stub = router.witness_stub("us-node")
        with pytest.raises(errors.Unavailable, match="not pinned"):
            await stub.GetLatestCosigned(pb.GetLatestCosignedRequest(), timeout=5)
        with pytest.raises(errors.NotFound, match="unknown node 'ca-node'"):
            router.witness_stub("ca-node")
    finally:
        await router.close()
