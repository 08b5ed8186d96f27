"""Quota counts kept beside the log: checked and counted in the decision entry's own transaction.

Two logs open on one database stand for two gateway processes (the real-process test is in
tests/e2e/test_replicas.py). Every decision is guarded by the counts it was decided on; the
store decides again on the database's counts when they moved, so the logged counts are the
counts the log's own order gives, however many writers and concurrent appends there are.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from comity.audit import events
from comity.audit.errors import InvalidEntry
from comity.audit.log import TransparencyLog
from comity.audit.pending import PendingMarker
from comity.audit.shared_state import FactsGuard, QuotaKey, QuotaRelease, SharedFacts, micros
from comity.audit.store import LogStore, PendingEntry
from comity.core.keys import SigningKey

pytestmark = pytest.mark.asyncio

NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
ORIGIN = "comity.test/quotas"
QUOTA = 5


def _decision(investigator: str, at: datetime, *, count: int, allowed: bool = True) -> bytes:
    entry, _ = events.decision_event(
        query_id=f"q-{investigator}-{at.isoformat()}-{count}",
        query_digest=b"\x01" * 32,
        at=at,
        investigator=investigator,
        agency="us.fbi",
        target_node="ca-node",
        order_id="order-1",
        offence_code="CC-467.11",
        categories=["SUBSCRIBER"],
        allowed=allowed,
        rule_codes=[] if allowed else ["QUOTA"],
        bundle_digest="sha256:00",
        selectors=[("email", "a@example.org")],
        facts={"investigator_queries_today": count},
    )
    return entry


def _guarded(investigator: str, at: datetime, expected: int) -> PendingEntry:
    """A decision under a quota of QUOTA, made on ``expected`` and again on the database's count."""

    def decided(count: int) -> PendingEntry:
        return PendingEntry(
            _decision(investigator, at, count=count, allowed=count < QUOTA),
            counts=QuotaKey(at.date().isoformat(), investigator, "us.fbi"),
        )

    def redecide(shared: SharedFacts) -> PendingEntry:
        return decided(shared.investigator_today)

    guard = FactsGuard(SharedFacts(expected, expected), b"", "us.fbi", micros(at), redecide)
    return PendingEntry(decided(expected).data, counts=decided(expected).counts, guard=guard)


async def _open(url: str, prefix: str, key: SigningKey) -> TransparencyLog:
    return await TransparencyLog.open(url, origin=ORIGIN, key=key, batch_interval=0.002, table_prefix=prefix)


async def test_concurrent_decisions_over_two_writers_count_exactly(log_url: tuple[str, str]) -> None:
    url, prefix = log_url
    key = SigningKey.generate(ORIGIN)
    first, second = await _open(url, prefix, key), await _open(url, prefix, key)
    try:
        # Every decision is made on a count of 0, as a process that knows nothing would.
        appends = [
            log.append(b"", pending=_guarded("us.fbi/agent-1", NOW, 0))
            for _ in range(8)
            for log in (first, second)
        ]
        results = await asyncio.gather(*appends)
        entries = await first.entries(0, await first.tree_size())
    finally:
        await first.close()
        await second.close()
    decisions = [json.loads(e) for e in entries]
    # In log order, each decision was made on the count of those before it, and exactly QUOTA allowed.
    assert [d["facts"]["investigator_queries_today"] for d in decisions] == list(range(16))
    assert [d["decision"] for d in decisions] == ["ALLOW"] * QUOTA + ["DENY"] * (16 - QUOTA)
    assert sorted(r.entry for r in results) == sorted(entries)


async def test_counts_are_per_day_and_per_investigator(log_url: tuple[str, str]) -> None:
    url, prefix = log_url
    log = await _open(url, prefix, SigningKey.generate(ORIGIN))
    try:
        for at, who in [(NOW - timedelta(days=1), "a"), (NOW, "a"), (NOW, "b"), (NOW, "a")]:
            await log.append(b"", pending=_guarded(f"us.fbi/{who}", at, 0))
        entries = [json.loads(e) for e in await log.entries(0, 4)]
    finally:
        await log.close()
    assert [e["facts"]["investigator_queries_today"] for e in entries] == [0, 0, 0, 1]


async def test_a_log_without_the_counts_is_counted_once_when_opened(log_url: tuple[str, str]) -> None:
    url, prefix = log_url
    key = SigningKey.generate(ORIGIN)
    log = await _open(url, prefix, key)
    for i in range(3):  # appended as an older gateway did: no counts kept
        await log.append(_decision("us.fbi/agent-1", NOW, count=i))
    await log.close()
    store = LogStore.open(url, table_prefix=prefix)
    t = store.tables.shared
    with store.writer.begin() as conn:  # as a database from before the tables existed
        conn.execute(delete(t.meta))
        conn.execute(delete(t.quota))
    store.close()
    store = LogStore.open(url, table_prefix=prefix)
    with store.writer.begin() as conn:
        counted = {(r[1], r[2]): r[3] for r in conn.execute(select(t.quota)).all()}
    store.close()
    assert counted == {("i", "us.fbi/agent-1"): 3, ("a", "us.fbi"): 3}
    log = await _open(url, prefix, key)
    try:
        await log.append(b"", pending=_guarded("us.fbi/agent-1", NOW, 0))
        last = json.loads((await log.entries(3, 4))[0])
    finally:
        await log.close()
    assert last["facts"]["investigator_queries_today"] == 3


async def test_an_unreadable_entry_stops_the_count(log_url: tuple[str, str]) -> None:
    url, prefix = log_url
    log = await _open(url, prefix, SigningKey.generate(ORIGIN))
    await log.append(b'{"kind":"decision","broken":true}')
    await log.close()
    store = LogStore.open(url, table_prefix=prefix)
    with store.writer.begin() as conn:
        conn.execute(delete(store.tables.shared.meta))
    store.close()
    with pytest.raises(InvalidEntry, match="entry 0"):
        LogStore.open(url, table_prefix=prefix)


def _allowed(investigator: str, digest: bytes, count: int) -> PendingEntry:
    """An allowed decision on ``count`` that opens its query's pending marker."""
    entry, _ = events.decision_event(
        query_id=f"q-{digest.hex()[:8]}",
        query_digest=digest,
        at=NOW,
        investigator=investigator,
        agency="us.fbi",
        target_node="ca-node",
        order_id="order-1",
        offence_code="CC-467.11",
        categories=["SUBSCRIBER"],
        allowed=True,
        rule_codes=[],
        bundle_digest="sha256:00",
        selectors=[("email", "a@example.org")],
        facts={"investigator_queries_today": count},
    )
    marker = PendingMarker(digest, f"q-{digest.hex()[:8]}", "ca-node", int(NOW.timestamp()))
    return PendingEntry(entry, opens=marker, counts=QuotaKey(NOW.date().isoformat(), investigator, "us.fbi"))


def _failure(investigator: str, digest: bytes, reason: str) -> PendingEntry:
    """A failure entry that gives the decision's count back if the store lets it."""

    def failed(released: bool) -> bytes:
        return events.failed_event(
            query_id=f"q-{digest.hex()[:8]}",
            query_digest=digest,
            at=NOW,
            node="ca-node",
            reason=reason,
            quota_released=released,
        )

    key = QuotaKey(NOW.date().isoformat(), investigator, "us.fbi")
    return PendingEntry(failed(True), closes=digest, release=QuotaRelease(key, digest, failed(False)))


def _count(url: str, prefix: str, investigator: str) -> int:
    store = LogStore.open(url, table_prefix=prefix, create=False)
    q = store.tables.shared.quota.c
    with store.writer.begin() as conn:
        row = conn.execute(select(q.count).where(q.kind == "i", q.subject == investigator)).first()
    store.close()
    return 0 if row is None else int(row[0])


async def test_a_failure_gives_its_decision_s_count_back_once(log_url: tuple[str, str]) -> None:
    url, prefix = log_url
    who = "us.fbi/agent-1"
    log = await _open(url, prefix, SigningKey.generate(ORIGIN))
    try:
        for i in range(3):
            await log.append(b"", pending=_allowed(who, bytes([i]) * 32, i))
        assert _count(url, prefix, who) == 3
        # Two failures of one query, in one batch and across two: only the first gives back.
        first, again = await asyncio.gather(
            log.append(b"", pending=_failure(who, b"\x00" * 32, "UNAVAILABLE")),
            log.append(b"", pending=_failure(who, b"\x00" * 32, "UNAVAILABLE")),
        )
        late = await log.append(b"", pending=_failure(who, b"\x00" * 32, "UNAVAILABLE"))
        # A failure of a query that was never decided here gives nothing back either.
        stray = await log.append(b"", pending=_failure(who, b"\x09" * 32, "UNAVAILABLE"))
        assert _count(url, prefix, who) == 2
        assert [json.loads(r.entry)["quota_released"] for r in (first, again, late, stray)] == [
            True,
            False,
            False,
            False,
        ]
        # The next decision is made on the count given back, as the log's order says.
        await log.append(b"", pending=_guarded(who, NOW, 3))
        entries = [json.loads(e) for e in await log.entries(0, await log.tree_size())]
    finally:
        await log.close()
    assert entries[-1]["facts"]["investigator_queries_today"] == 2
    assert _count(url, prefix, who) == 3
    # Counting the log from scratch gives the same counts.
    store = LogStore.open(url, table_prefix=prefix)
    t = store.tables.shared
    with store.writer.begin() as conn:
        conn.execute(delete(t.meta))
        conn.execute(delete(t.quota))
    store.close()
    LogStore.open(url, table_prefix=prefix).close()
    assert _count(url, prefix, who) == 3
