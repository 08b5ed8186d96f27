"""The leader lock of gateway replicas: a PostgreSQL session-level advisory lock, real server.

Two claims on one database stand for two gateway processes (the real-process test is
tests/e2e/test_replica_leader.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg

from comity.gateway.leadership import Leadership


def test_one_leads_the_other_takes_over_when_it_stops(postgres_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}_"
    first = Leadership(postgres_url, interval=1.0, table_prefix=prefix)
    second = Leadership(postgres_url, interval=1.0, table_prefix=prefix)
    other_log = Leadership(postgres_url, interval=1.0, table_prefix=f"{prefix}x_")
    seen: list[bool] = []
    second.on_change(seen.append)
    try:
        assert first.try_lead() is True
        assert second.try_lead() is False
        assert first.try_lead() is True  # still held
        assert other_log.try_lead() is True  # another log's replicas have a leader of their own
        first._release()  # the leader's session ends (as when its process dies)
        assert second.try_lead() is True
        assert first.try_lead() is False
        assert seen == [False, True]
    finally:
        for claim in (first, second, other_log):
            claim._release()


def test_a_leader_whose_session_was_ended_stops_leading(postgres_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}_"
    leader = Leadership(postgres_url, interval=1.0, table_prefix=prefix)
    standby = Leadership(postgres_url, interval=1.0, table_prefix=prefix)
    try:
        assert leader.try_lead() is True
        assert leader._conn is not None
        pid = leader._conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert standby.try_lead() is True
        assert leader.try_lead() is False  # its check fails: it knows it lost the lead
        assert leader.try_lead() is False  # and the lock is the standby's now
    finally:
        leader._release()
        standby._release()


def test_an_sqlite_log_s_only_writer_always_leads(tmp_path: Path) -> None:
    claim = Leadership(f"sqlite:///{tmp_path / 'audit.db'}", interval=1.0)
    assert claim.leading and claim.try_lead()
