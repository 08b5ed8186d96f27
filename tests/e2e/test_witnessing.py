"""Witnessing that does not depend on queries, over the real federation on loopback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from comity.audit import events
from comity.gateway.witnessing import WitnessingStatus
from comity.sdk.demo.run import RunningFederation

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _quorum_at(running: RunningFederation, size: int, *, limit: float = 30.0) -> WitnessingStatus:
    """Wait (no queries) until the loop reports a quorum checkpoint of ``size``; the bound is generous."""
    loop = running.gateway.witnessing
    assert loop is not None
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        if loop.status.quorum_size == size:
            return loop.status
        await asyncio.sleep(0.05)
    raise AssertionError(f"no quorum at size {size}: {loop.status.detail()}")


async def test_the_end_of_the_log_is_quorum_cosigned_without_further_queries(
    running: RunningFederation,
) -> None:
    ledger = running.gateway.ledger
    entry = events.failed_event(
        query_id="q-witness", query_digest=b"\0" * 32, node="ca-node", reason="TEST", at=datetime.now(UTC)
    )
    logged = await ledger.record(entry)
    status = await _quorum_at(running, logged.tree_size)
    assert not status.overdue and not status.forks
    cosigners = dict(await asyncio.to_thread(ledger.log.store.cosigners))
    assert set(cosigners[logged.tree_size]) == {"us-node", "ca-node"}
