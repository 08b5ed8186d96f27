"""The node reaches the gateway's log through every endpoint the federation file lists for it.

A running federation on loopback; the node's client of the log (``GatewayLog``) is given the
gateway's real endpoint behind one where nothing listens (a stopped replica). Proofs come from
the live one, a stopped replica costs no failure, and with none up the error says what to do.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from comity.core.errors import NotFound, Unavailable
from comity.core.federation import Federation
from comity.nodes.logsync import GatewayLog
from comity.sdk.demo.run import RunningFederation
from comity.sdk.demo.setup import free_ports

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _federation(running: RunningFederation, endpoints: list[str]) -> Federation:
    fed = Federation.load(running.federation.layout.federation_file)
    gateway = dataclasses.replace(fed.gateway, endpoint=endpoints[0], replica_endpoints=tuple(endpoints[1:]))
    return dataclasses.replace(fed, gateway=gateway)


async def test_a_stopped_replica_is_passed_over_for_a_live_one(running: RunningFederation) -> None:
    ledger = running.gateway.ledger
    for i in range(3):
        await ledger.record(f'{{"kind": "test", "n": {i}}}'.encode())
    size = await ledger.tree_size()
    live = running.federation.layout.gateway.endpoint
    stopped = f"127.0.0.1:{free_ports(1)[0]}"
    log = GatewayLog(_federation(running, [stopped, live]), timeout=10.0)
    try:
        assert log.endpoints == (stopped, live)
        proof = await asyncio.to_thread(log.consistency, 1, size)
        assert proof == await ledger.consistency_proof(1, size)
        # The live one is asked first from now on.
        assert await asyncio.to_thread(log.consistency, 2, size) == await ledger.consistency_proof(2, size)
        with pytest.raises(NotFound, match="holds no checkpoint cosigned"):
            await asyncio.to_thread(log.cosigned_by, "nobody")
    finally:
        log.close()


async def test_with_no_replica_up_the_error_names_the_endpoints_and_the_fix(
    running: RunningFederation,
) -> None:
    ports = free_ports(2)
    endpoints = [f"127.0.0.1:{p}" for p in ports]
    log = GatewayLog(_federation(running, endpoints), timeout=1.0)
    try:
        with pytest.raises(Unavailable) as info:
            await asyncio.to_thread(log.consistency, 1, 2)
    finally:
        log.close()
    assert "no endpoint answered" in info.value.message
    assert all(e in info.value.message for e in endpoints)
    assert info.value.hint is not None and "replica_endpoints" in info.value.hint


async def test_a_new_version_s_endpoints_are_asked_from_the_next_call(running: RunningFederation) -> None:
    ledger = running.gateway.ledger
    await ledger.record(b'{"kind": "test", "n": "moved"}')
    size = await ledger.tree_size()
    live = running.federation.layout.gateway.endpoint
    stopped = f"127.0.0.1:{free_ports(1)[0]}"
    log = GatewayLog(_federation(running, [stopped]), timeout=1.0)
    try:
        with pytest.raises(Unavailable):
            await asyncio.to_thread(log.consistency, 1, size)
        swap = log.prepare(_federation(running, [stopped, live]))
        assert log.endpoints == (stopped,)  # prepared, not yet in use
        swap()
        assert log.endpoints == (stopped, live)
        assert await asyncio.to_thread(log.consistency, 1, size) == await ledger.consistency_proof(1, size)
        # The stopped one removed: the live one alone, on the channel it already had.
        log.prepare(_federation(running, [live]))()
        assert log.endpoints == (live,)
        assert await asyncio.to_thread(log.consistency, 2, size) == await ledger.consistency_proof(2, size)
    finally:
        log.close()
