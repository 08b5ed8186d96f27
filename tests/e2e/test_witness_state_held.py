"""A node whose existing witness state cannot be checked at start (gateway down) cosigns nothing until it is.

The node starts (no start order between nodes and gateway) but its witness is held; once the
gateway answers, the state is compared with the log: a current state is released and witnessing
goes on, a state restored from an older copy stays held and refuses, naming the fix.
"""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from comity.audit import events
from comity.core.federation import Federation
from comity.core.tls import node_channel_credentials
from comity.gateway.config import load_gateway_config
from comity.gateway.routing import NodeEndpoint, NodeRouter
from comity.gateway.server import RunningGateway, start_gateway
from comity.nodes.config import load_node_config
from comity.nodes.server import start_node
from comity.sdk.demo.run import running_federation
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio


async def _witnessed(gateway: RunningGateway, size: int) -> None:
    loop = gateway.witnessing
    assert loop is not None
    for _ in range(600):
        if (loop.status.quorum_size or -1) >= size:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(loop.status.detail())


async def _append(gateway: RunningGateway, tag: str) -> int:
    entry = events.failed_event(
        query_id=f"q-{tag}", query_digest=b"\0" * 32, node="us-node", reason="TEST", at=datetime.now(UTC)
    )
    return (await gateway.ledger.record(entry)).tree_size


def _router(fed: DemoFederation) -> NodeRouter:
    """The gateway's client certificate, to call the US node's witness while no gateway runs."""
    config = load_gateway_config(fed.gateway_config)
    node = Federation.load(fed.layout.federation_file).node("us-node")
    credentials = node_channel_credentials(node, config.client_cert, config.client_key)
    return NodeRouter({node.id: NodeEndpoint(node.id, node.endpoint, credentials, server_name=node.host)})


async def _refusal(router: NodeRouter, gateway_note: bytes) -> str:
    request = pb.AddCheckpointRequest(old_size=0, checkpoint=pb.Checkpoint(signed_note=gateway_note))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await router.witness_stub("us-node").AddCheckpoint(request, timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return refused.value.details() or ""


async def _still_refused(router: NodeRouter, note: bytes, text: str) -> None:
    for _ in range(100):
        details = await _refusal(router, note)
        if text in details:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(details)


def _restore(backup: Path, state: Path) -> None:
    shutil.copy(backup, state)
    for suffix in ("-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)


async def test_a_node_started_without_its_gateway_holds_its_witness_until_the_state_is_compared(
    tmp_path: Path,
) -> None:
    fed = build_demo_federation(tmp_path, people=5, seed=9)
    config = load_node_config(fed.node_configs["us-node"])
    early = tmp_path / "early-witness.db"
    async with running_federation(fed) as running:
        await _witnessed(running.gateway, await _append(running.gateway, "one"))
        shutil.copy(config.witness_state, early)
        await _witnessed(running.gateway, await _append(running.gateway, "two"))
        note = await running.gateway.ledger.log.latest_checkpoint()
    router = _router(fed)
    try:
        # Current state, gateway down: the node starts, but cosigns nothing.
        node = await start_node(config, gateway_wait_seconds=0.5)
        try:
            assert "has not yet compared its state with the gateway's log" in await _refusal(router, note)
            gateway = await start_gateway(load_gateway_config(fed.gateway_config))
            other = await start_node(load_node_config(fed.node_configs["ca-node"]))
            try:  # compared once the gateway answers: released, and witnessing goes on
                await _witnessed(gateway, await _append(gateway, "three"))
            finally:
                await gateway.handle.stop(0)
                await other.stop(0)
        finally:
            await node.stop(0)

        # A state restored from an older copy, gateway down: held, then refused once compared.
        _restore(early, config.witness_state)
        node = await start_node(config, gateway_wait_seconds=0.5)
        try:
            gateway = await start_gateway(load_gateway_config(fed.gateway_config))
            try:
                await _still_refused(router, note, "but the log shows this witness cosigned tree size")
                assert "--reinitialise-witness" in await _refusal(router, note)
            finally:
                await gateway.handle.stop(0)
        finally:
            await node.stop(0)
    finally:
        await router.close()
