"""Crash recovery with real processes: the node dies between its decision and the disclosure.

The gateway and both nodes run as `comity ... serve` processes. The US node keeps its outbox in
a file of its own, which the test locks: the node decides, signs its allowance and its answer's
statement, and then waits to make them durable. The gateway's deadline passes (the query ends
in a ``failed`` entry), then the node is killed with SIGKILL, once after the outbox write got
through and once before. After the node restarts, the trail must be complete: every allowed
decision ends in a disclosure or a failure, no marker stays open, the node's signed allowance
is in the log exactly when its outbox kept it, and the outbox is empty.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import pytest
from served import count_rows, port_of, serving, wait_for

from comity.audit.events import DecisionEvent, Event, FailedEvent, NodeDecisionEvent, decode_event
from comity.audit.store import LogStore
from comity.sdk.demo.run import run_scenario, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.profile import load_profile

OUTBOX = "comity_node_outbox"


@pytest.fixture(autouse=True)
def _quiet_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_VERBOSITY", "NONE")


def _federation(tmp_path: Path) -> tuple[DemoFederation, Path]:
    fed = build_demo_federation(tmp_path / "fed", people=10, seed=13)
    with fed.gateway_config.open("a", encoding="utf-8") as config:
        # A short deadline: the query gives up on the waiting node long before the node's store
        # gives up on its lock (5 s). The grace leaves in-flight queries to their own requests.
        config.write("\n[limits]\nnode_deadline_seconds = 1\n")
        config.write("\n[recovery]\ninterval_seconds = 0.2\ngrace_seconds = 3\n")
    outbox = fed.directory / "data" / "us-node-outbox.db"
    node_config = fed.node_configs["us-node"]
    text = node_config.read_text(encoding="utf-8")
    node_config.write_text(
        text.replace("[store]\n", f'[store]\noutbox_url = "sqlite:///{outbox}"\n', 1), encoding="utf-8"
    )
    return fed, outbox


def _failures(fed: DemoFederation) -> int:
    with sqlite3.connect(fed.audit_db) as db:
        return sum(
            b'"kind":"failed"' in bytes(row[0]) for row in db.execute("SELECT data FROM audit_entries")
        )


def _trail(fed: DemoFederation) -> list[Event]:
    store = LogStore.open(f"sqlite:///{fed.audit_db}", create=False)
    try:
        assert store.pending_markers() == [], "a marker stayed open"
        return [decode_event(d) for _, _, d in store.iter_entries(store.tree_size())]
    finally:
        store.close()


def assert_every_allowed_decision_ended(logged: list[Event]) -> None:
    """No allowed decision without a disclosure or a failure entry of its query."""
    ended = {e.query_digest for e in logged if e.kind in ("disclosed", "failed")}  # type: ignore[union-attr]
    allowed = [e for e in logged if isinstance(e, DecisionEvent) and e.decision == "ALLOW"]
    assert allowed and [d.query_id for d in allowed if d.query_digest not in ended] == []


@pytest.mark.asyncio
@pytest.mark.parametrize("durable_before_kill", [True, False], ids=["outbox-written", "outbox-not-written"])
async def test_node_killed_between_its_decision_and_the_disclosure(
    tmp_path: Path, durable_before_kill: bool
) -> None:
    fed, outbox = _federation(tmp_path)
    rcmp = next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))
    us = fed.layout.nodes["us-node"]
    with (
        serving("gateway", fed.gateway_config, port_of(fed.layout.gateway.endpoint)),
        serving("node", fed.node_configs["ca-node"], fed.layout.nodes["ca-node"].port),
    ):
        with serving("node", fed.node_configs["us-node"], us.port) as node:
            async with load_profile(fed.profiles["ca.rcmp"]).async_client() as client:
                for _ in range(50):  # a node channel may still be in reconnect back-off
                    warm = await run_scenario(client, fed, rcmp)
                    if warm.result is not None:
                        break
                    await asyncio.sleep(0.2)
                assert warm.result is not None, warm.error
                await asyncio.to_thread(wait_for, lambda: count_rows(outbox, OUTBOX) == 0, "ack")
                lock = sqlite3.connect(outbox, isolation_level=None, timeout=30)
                lock.execute("BEGIN EXCLUSIVE")  # the node can decide, not make it durable
                try:
                    failures = _failures(fed)
                    query = asyncio.create_task(run_scenario(client, fed, rcmp))
                    # The gateway gives up on the node and logs why; the node still waits (released
                    # at once, well inside the node store's 5 s busy timeout).
                    await asyncio.to_thread(wait_for, lambda: _failures(fed) > failures, "the failure")
                    assert count_rows(outbox, OUTBOX) == 0
                    if not durable_before_kill:
                        node.send_signal(signal.SIGKILL)
                        node.wait()
                finally:
                    lock.rollback()
                    lock.close()
                if durable_before_kill:
                    await asyncio.to_thread(wait_for, lambda: count_rows(outbox, OUTBOX) == 1, "outbox")
                    node.send_signal(signal.SIGKILL)
                    node.wait()
                outcome = await query
                assert outcome.result is None and outcome.error is not None
        kept = count_rows(outbox, OUTBOX)
        assert kept == (1 if durable_before_kill else 0)
        with serving("node", fed.node_configs["us-node"], us.port):
            # The gateway's recovery reconciles the restarted node's outbox.
            await asyncio.to_thread(wait_for, lambda: count_rows(outbox, OUTBOX) == 0, "recovery", 30)
            logged = _trail(fed)
    assert_every_allowed_decision_ended(logged)
    last = next(e for e in reversed(logged) if isinstance(e, DecisionEvent))
    mine = [e for e in logged if getattr(e, "query_id", "") == last.query_id]
    assert isinstance(mine[0], DecisionEvent) and mine[0].decision == "ALLOW"
    failures = [e for e in mine if isinstance(e, FailedEvent)]
    assert len(failures) == 1 and failures[0].reason == "DEADLINE_EXCEEDED"
    assert not any(e.kind == "disclosed" for e in mine)
    node_decisions = [e for e in mine if isinstance(e, NodeDecisionEvent)]
    if durable_before_kill:
        # The node's signed answer, kept in its outbox, reached the log after the restart.
        assert len(node_decisions) == 1
        assert node_decisions[0].decision == "ALLOW" and node_decisions[0].node_statement
    else:
        assert node_decisions == []  # nothing the node signed ever left it
