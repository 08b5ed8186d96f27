"""Crash recovery with real processes: the gateway dies between the node's answer and the log.

The node and the gateway run as `comity node serve` / `comity gateway serve` processes. The
node is paused until the allowed decision is logged, the log database is then locked (the
disclosure cannot be appended), the node answers, and the gateway is killed. After a restart,
the trail must be complete: the node's signed answer (from its outbox) and a failure entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from comity.audit.events import DecisionEvent, FailedEvent, NodeDecisionEvent, decode_event
from comity.audit.store import LogStore
from comity.gateway.recovery import INCOMPLETE
from comity.sdk.demo.run import run_scenario, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.profile import load_profile

COMITY = str(Path(sys.executable).parent / "comity")


@pytest.fixture(autouse=True)
def _quiet_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_VERBOSITY", "NONE")


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


@contextmanager
def _serving(kind: str, config: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [COMITY, kind, "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "GRPC_VERBOSITY": "NONE"},
    )
    try:
        _wait(lambda: _listening(port), f"{kind} on port {port}")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


class _Stopper:
    """Ends a started ``_serving`` context (the gateway outlives the block that kills it)."""

    def __init__(self, serving: contextlib.AbstractContextManager[object]) -> None:
        self._serving = serving

    def close(self) -> None:
        self._serving.__exit__(None, None, None)


def _federation(tmp_path: Path) -> DemoFederation:
    fed = build_demo_federation(tmp_path / "fed", people=10, seed=11)
    with fed.gateway_config.open("a", encoding="utf-8") as config:
        config.write("\n[recovery]\ninterval_seconds = 0.2\ngrace_seconds = 0.1\n")
    return fed


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


async def test_gateway_killed_before_the_disclosure_the_trail_completes_after_restart(
    tmp_path: Path,
) -> None:
    fed = _federation(tmp_path)
    rcmp = next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))
    node_db = fed.directory / "data" / "us-node.db"
    gateway_port = _port(fed.layout.gateway.endpoint)
    # The gateway first: a node's witness reads the log's state when it starts.
    first = _serving("gateway", fed.gateway_config, gateway_port)
    gateway = first.__enter__()
    with (
        _serving("node", fed.node_configs["ca-node"], fed.layout.nodes["ca-node"].port),
        _serving("node", fed.node_configs["us-node"], fed.layout.nodes["us-node"].port) as us_node,
    ):
        with contextlib.closing(_Stopper(first)):
            async with load_profile(fed.profiles["ca.rcmp"]).async_client() as client:
                # One query through first (the channels are up), its outbox item acknowledged.
                for _ in range(50):  # a node channel may still be in reconnect back-off
                    warm = await run_scenario(client, fed, rcmp)
                    if warm.result is not None:
                        break
                    await asyncio.sleep(0.2)
                assert warm.result is not None, warm.error
                await asyncio.to_thread(_wait, lambda: _count(node_db, "comity_node_outbox") == 0, "ack")
                us_node.send_signal(signal.SIGSTOP)  # the decision is logged, the node does not answer yet
                query = asyncio.create_task(run_scenario(client, fed, rcmp))
                await asyncio.to_thread(_wait, lambda: _count(fed.audit_db, "audit_pending") == 1, "decision")
                lock = sqlite3.connect(fed.audit_db, isolation_level=None, timeout=30)
                lock.execute("BEGIN EXCLUSIVE")  # from here on, nothing can be appended
                us_node.send_signal(signal.SIGCONT)
                await asyncio.to_thread(_wait, lambda: _count(node_db, "comity_node_outbox") == 1, "answer")
                gateway.kill()  # the node answered; the gateway dies before logging the disclosure
                gateway.wait()
                lock.rollback()
                lock.close()
                outcome = await query
            assert outcome.result is None and outcome.error is not None
        with _serving("gateway", fed.gateway_config, gateway_port):
            # Recovery's first round, soon after start-up, completes the trail.
            await asyncio.to_thread(_wait, lambda: _count(fed.audit_db, "audit_pending") == 0, "recovery")
            store = LogStore.open(f"sqlite:///{fed.audit_db}", create=False)
            try:
                logged = [decode_event(d) for _, _, d in store.iter_entries(store.tree_size())]
                assert store.pending_markers() == []
            finally:
                store.close()
            last = next(e for e in reversed(logged) if isinstance(e, DecisionEvent))
            mine = [e for e in logged if getattr(e, "query_id", "") == last.query_id]  # type: ignore[union-attr]
            assert [e.kind for e in mine] == ["decision", "node_decision", "failed"]
            decision, node_decision, failed = mine
            assert isinstance(decision, DecisionEvent) and decision.decision == "ALLOW"
            assert isinstance(node_decision, NodeDecisionEvent) and node_decision.decision == "ALLOW"
            assert node_decision.node_statement, "the node's signed answer reached the log"
            assert isinstance(failed, FailedEvent) and failed.reason == INCOMPLETE
            # The node was told: its outbox is empty.
            await asyncio.to_thread(_wait, lambda: _count(node_db, "comity_node_outbox") == 0, "ack")
