"""A PostgreSQL log that goes away mid-query, with real processes and a real server.

The gateway keeps its log in a PostgreSQL database of its own. An allowed query's decision is
logged while the node is paused; then the database stops accepting connections and every
session of the gateway is terminated (``pg_terminate_backend``), and the node answers. The
gateway cannot log the disclosure: the caller gets UNAVAILABLE in words (no URL, no driver or
class name). Once the database accepts connections again, the trail completes by itself: the
failure entry the gateway kept, and the node's signed answer from its outbox.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from served import count_rows, port_of, serving, wait_for

from comity.audit.events import DecisionEvent, Event, FailedEvent, NodeDecisionEvent, decode_event
from comity.audit.store import LogStore
from comity.core import errors
from comity.sdk.demo.run import run_scenario, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.profile import load_profile

OUTBOX = "comity_node_outbox"


@pytest.fixture(autouse=True)
def _quiet_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_VERBOSITY", "NONE")


@pytest.fixture
def log_database(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A database of its own for the gateway's log: (its URL, its name)."""
    name = f"comity_outage_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    yield postgres_url.rsplit("/", 1)[0] + "/" + name, name
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _federation(tmp_path: Path, url: str) -> DemoFederation:
    fed = build_demo_federation(tmp_path / "fed", people=10, seed=17)
    config = fed.gateway_config.read_text(encoding="utf-8")
    config = config.replace('url = "sqlite:///../data/audit.db"', f'url = "{url}"')
    assert url in config
    fed.gateway_config.write_text(
        config + "\n[recovery]\ninterval_seconds = 0.2\ngrace_seconds = 3\n", encoding="utf-8"
    )
    return fed


def _pending(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=3) as db:
            row = db.execute("SELECT count(*) FROM audit_pending").fetchone()
    except psycopg.Error:
        return -1
    return int(row[0]) if row else 0


def _outage(admin: str, name: str, *, down: bool) -> None:
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {'false' if down else 'true'}")
        if down:
            db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


def _trail(url: str) -> list[Event]:
    store = LogStore.open(url, create=False)
    try:
        assert store.pending_markers() == [], "a marker stayed open"
        return [decode_event(d) for _, _, d in store.iter_entries(store.tree_size())]
    finally:
        store.close()


@pytest.mark.asyncio
async def test_the_log_database_going_away_mid_query_leaves_a_complete_trail(
    tmp_path: Path, postgres_url: str, log_database: tuple[str, str]
) -> None:
    url, name = log_database
    fed = _federation(tmp_path, url)
    rcmp = next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))
    node_db = fed.directory / "data" / "us-node.db"
    with (
        serving("gateway", fed.gateway_config, port_of(fed.layout.gateway.endpoint)),
        serving("node", fed.node_configs["ca-node"], fed.layout.nodes["ca-node"].port),
        serving("node", fed.node_configs["us-node"], fed.layout.nodes["us-node"].port) as us_node,
    ):
        async with load_profile(fed.profiles["ca.rcmp"]).async_client() as client:
            for _ in range(50):  # a node channel may still be in reconnect back-off
                warm = await run_scenario(client, fed, rcmp)
                if warm.result is not None:
                    break
                await asyncio.sleep(0.2)
            assert warm.result is not None, warm.error
            await asyncio.to_thread(wait_for, lambda: count_rows(node_db, OUTBOX) == 0, "ack")
            us_node.send_signal(signal.SIGSTOP)  # the decision is logged, the node does not answer yet
            try:
                query = asyncio.create_task(run_scenario(client, fed, rcmp))
                await asyncio.to_thread(wait_for, lambda: _pending(url) == 1, "the decision")
                _outage(postgres_url, name, down=True)
            finally:
                us_node.send_signal(signal.SIGCONT)
            try:
                outcome = await query
            finally:
                _outage(postgres_url, name, down=False)
            err = outcome.error
            assert outcome.result is None and isinstance(err, errors.Unavailable), outcome
            words = err.diagnostics()
            assert "cannot write its audit log (the database is unreachable)" in words, words
            assert "nothing was released" in words and "again later" in words, words
            for internal in ("postgresql", "psycopg", "sqlalchemy", "OperationalError", name, "127.0.0.1"):
                assert internal.lower() not in words.lower(), words
        # The database is back: the gateway's timers complete the trail without a restart.
        await asyncio.to_thread(wait_for, lambda: _pending(url) == 0, "the failure entry")
        await asyncio.to_thread(wait_for, lambda: count_rows(node_db, OUTBOX) == 0, "the node's outbox")
        logged = _trail(url)
    ended = {e.query_digest for e in logged if e.kind in ("disclosed", "failed")}  # type: ignore[union-attr]
    allowed = [e for e in logged if isinstance(e, DecisionEvent) and e.decision == "ALLOW"]
    assert allowed and [d.query_id for d in allowed if d.query_digest not in ended] == []
    mine = [e for e in logged if getattr(e, "query_id", "") == allowed[-1].query_id]
    failures = [e for e in mine if isinstance(e, FailedEvent)]
    assert len(failures) == 1 and failures[0].reason == "DISCLOSURE_NOT_LOGGED"
    assert not any(e.kind == "disclosed" for e in mine)
    node_decisions = [e for e in mine if isinstance(e, NodeDecisionEvent)]
    assert len(node_decisions) == 1 and node_decisions[0].node_statement
