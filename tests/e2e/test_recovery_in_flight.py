"""Recovery leaves alone a query another gateway replica is still working on.

Over one database, a replica's recovery sweep finds in a node's outbox the signed decisions of
queries other replicas forwarded. While such a query's pending marker is fresh (opened within
the grace period), its own replica is about to log what the node signed: recovery must not log
it first, or the log would hold the node's decision twice. The federation runs on loopback (real
gRPC, TLS, signatures, SQLite); "another replica" is this gateway with its own memory of the
queries in flight wiped, so only the database's markers say the query is in flight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from comity.audit.events import NodeDecisionEvent, decode_event
from comity.sdk.demo.run import RunningFederation, run_scenario, scenarios
from comity.sdk.profile import load_profile
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def still(running: RunningFederation) -> AsyncIterator[RunningFederation]:
    """The federation with its witnessing loop stopped (recovery is run by hand here)."""
    assert running.gateway.witnessing is not None
    await running.gateway.witnessing.stop()
    yield running


async def _node_decisions(running: RunningFederation, query_id: str) -> int:
    log = running.gateway.ledger.log
    size = await log.tree_size()
    events = [decode_event(e) for e in await log.entries(0, size)]
    return sum(1 for e in events if isinstance(e, NodeDecisionEvent) and e.query_id == query_id)


async def test_a_sweep_during_another_replicas_query_does_not_log_its_node_decision(
    still: RunningFederation, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = still.gateway
    assert gateway.recovery is not None
    router, ledger = gateway.router, gateway.ledger
    execute = router.execute
    swept: list[tuple[int, int]] = []

    async def execute_then_sweep(node: str, request: pb.ExecuteRequest, **kw: object) -> pb.QueryResult:
        result = await execute(node, request, **kw)  # type: ignore[arg-type]
        # The node answered and holds its signed decision in its outbox; the query's own request
        # has not logged it yet. A replica that never saw this query sweeps now.
        ledger._in_flight.clear()
        swept.append(await gateway.recovery._recovery.sweep())
        return result

    monkeypatch.setattr(router, "execute", execute_then_sweep)
    s = next(s for s in scenarios(still.federation) if s.expect_allowed)
    async with load_profile(still.federation.profiles[s.agency]).async_client() as client:
        outcome = await run_scenario(client, still.federation, s)
    assert outcome.result is not None, outcome.error and outcome.error.diagnostics()
    assert swept == [(0, 0)]  # nothing appended, nothing ended
    assert await _node_decisions(still, outcome.result.query_id) == 1
