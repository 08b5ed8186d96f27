"""Refusal counts kept beside the log: checked and counted in each refusal entry's transaction.

Two logs open on one database stand for two gateway processes (the real-process test is
tests/e2e/test_replica_limits.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from comity.audit import events
from comity.audit.errors import EntryWithdrawn
from comity.audit.log import TransparencyLog
from comity.audit.refusal_counts import OVER_AGENCY, OVER_INVESTIGATOR, RefusalCount
from comity.audit.store import LogStore, PendingEntry
from comity.core.keys import SigningKey

pytestmark = pytest.mark.asyncio

NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
ORIGIN = "comity.test/refusals"


def _refused(
    investigator: str, agency: str, n: int, *, window: int = 7, enforce: bool = True
) -> PendingEntry:
    entry = events.refused_event(
        query_id=f"q-{investigator}-{n}",
        query_digest=bytes([n % 256]) * 32,
        investigator=investigator,
        agency=agency,
        reason_code="INVALID_ARGUMENT",
        at=NOW,
        checks=[("QUERY_DECODE", "AUDIT_FIELDS")],
    )
    return PendingEntry(entry, refusal=RefusalCount(window, investigator, agency, 3, 5, enforce))


async def _open(url: str, prefix: str, key: SigningKey) -> TransparencyLog:
    return await TransparencyLog.open(url, origin=ORIGIN, key=key, batch_interval=0.002, table_prefix=prefix)


async def _append(log: TransparencyLog, pending: PendingEntry) -> str:
    try:
        await log.append(pending.data, pending=pending)
    except EntryWithdrawn as exc:
        return exc.message
    return "logged"


async def test_two_writers_log_exactly_the_limit(log_url: tuple[str, str]) -> None:
    url, prefix = log_url
    key = SigningKey.generate(ORIGIN)
    first, second = await _open(url, prefix, key), await _open(url, prefix, key)
    try:
        outcomes = await asyncio.gather(
            *(
                _append(log, _refused("us.fbi/a", "us.fbi", 2 * n + i))
                for n in range(6)
                for i, log in enumerate((first, second))
            )
        )
        # Another investigator of the agency: two more inside the agency's 5, then the agency's limit.
        others = [await _append(first, _refused(f"us.fbi/b{n}", "us.fbi", 100 + n)) for n in range(3)]
        # A decision that names refusals is counted, never withdrawn.
        counted = await _append(second, _refused("us.fbi/a", "us.fbi", 200, enforce=False))
        # The next window starts from nothing.
        later = await _append(first, _refused("us.fbi/a", "us.fbi", 201, window=9))
        size = await first.tree_size()
    finally:
        await first.close()
        await second.close()
    assert outcomes.count("logged") == 3
    assert outcomes.count(OVER_INVESTIGATOR) == 9
    assert others == ["logged", "logged", OVER_AGENCY]
    assert counted == "logged" and later == "logged"
    assert size == 3 + 2 + 1 + 1
    store = LogStore.open(url, table_prefix=prefix, create=False)
    c = store.tables.refusals.c
    with store.writer.begin() as conn:
        periods = {int(r[0]) for r in conn.execute(select(c.period)).all()}
    store.close()
    assert periods == {9}  # the counts of windows that ended are gone
