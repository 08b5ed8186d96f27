"""Quota counters survive a gateway restart: today's decisions are read back from the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from comity.audit import events
from comity.core.errors import FailedPrecondition
from comity.core.keys import SigningKey
from comity.gateway.ledger import Ledger
from comity.gateway.quota_state import restore_quotas
from comity.policy.quotas import QuotaCounters

pytestmark = pytest.mark.asyncio

NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
ORIGIN = "comity.test/quotas"


async def _ledger(path: Path, key: SigningKey) -> Ledger:
    return await Ledger.open(f"sqlite:///{path}", origin=ORIGIN, key=key, witnesses={}, batch_interval=0)


def _decision(investigator: str, agency: str, at: datetime, *, allowed: bool = True) -> bytes:
    entry, _ = events.decision_event(
        query_id=f"q-{investigator}-{at.isoformat()}",
        query_digest=b"\x01" * 32,
        at=at,
        investigator=investigator,
        agency=agency,
        target_node="ca-node",
        order_id="order-1",
        offence_code="CC-467.11",
        categories=["SUBSCRIBER"],
        allowed=allowed,
        rule_codes=[] if allowed else ["SERIOUS_CRIME"],
        bundle_digest="sha256:00",
        selectors=[("email", "a@example.org")],
    )
    return entry


async def test_a_restart_keeps_todays_counts_and_drops_yesterdays(tmp_path: Path) -> None:
    key = SigningKey.generate(ORIGIN)
    ledger = await _ledger(tmp_path / "audit.db", key)
    yesterday = NOW - timedelta(days=1)
    for i in range(3):
        await ledger.log.append(_decision("us.fbi/agent-1", "us.fbi", yesterday + timedelta(minutes=i)))
    await ledger.log.append(_decision("us.fbi/agent-1", "us.fbi", NOW - timedelta(hours=2)))
    await ledger.log.append(_decision("us.fbi/agent-1", "us.fbi", NOW - timedelta(hours=1), allowed=False))
    await ledger.log.append(_decision("us.fbi/agent-2", "us.fbi", NOW - timedelta(minutes=5)))
    refused = events.refused_event(
        query_id="q-r", query_digest=b"\x02" * 32, at=NOW, investigator="us.fbi/agent-1",
        agency="us.fbi", reason_code="INVALID_ARGUMENT:ReplayError",
    )  # fmt: skip
    await ledger.log.append(refused)
    await ledger.close()

    reopened = await _ledger(tmp_path / "audit.db", key)
    quotas = QuotaCounters()
    try:
        # Denied queries count (they were decided); refusals before policy and yesterday's do not.
        assert await restore_quotas(reopened, quotas, now=NOW) == 3
    finally:
        await reopened.close()
    counters = quotas.before("us.fbi/agent-1", "us.fbi", now=NOW)
    assert (counters.investigator_today, counters.agency_today) == (2, 3)
    assert quotas.before("us.fbi/agent-2", "us.fbi", now=NOW).investigator_today == 1
    # Tomorrow starts from zero as before.
    assert quotas.before("us.fbi/agent-1", "us.fbi", now=NOW + timedelta(days=1)).agency_today == 0


async def test_reading_stops_at_yesterday_across_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import comity.gateway.quota_state as quota_state

    monkeypatch.setattr(quota_state, "PAGE", 4)
    ledger = await _ledger(tmp_path / "audit.db", SigningKey.generate(ORIGIN))
    old = NOW - timedelta(days=3)
    for i in range(20):
        await ledger.log.append(_decision("us.fbi/agent-1", "us.fbi", old + timedelta(seconds=i)))
    for i in range(10):
        await ledger.log.append(_decision("us.fbi/agent-1", "us.fbi", NOW - timedelta(minutes=30 - i)))
    read: list[tuple[int, int]] = []
    entries = ledger.entries

    async def spy(start: int, end: int) -> list[bytes]:
        read.append((start, end))
        return await entries(start, end)

    monkeypatch.setattr(ledger, "entries", spy)
    quotas = QuotaCounters()
    try:
        assert await restore_quotas(ledger, quotas, now=NOW) == 10
    finally:
        await ledger.close()
    # Pages of 4 from the end: the third reaches back to three days ago, and reading stops there.
    assert read == [(26, 30), (22, 26), (18, 22)]


async def test_an_unreadable_entry_stops_the_start(tmp_path: Path) -> None:
    ledger = await _ledger(tmp_path / "audit.db", SigningKey.generate(ORIGIN))
    await ledger.log.append(_decision("us.fbi/agent-1", "us.fbi", NOW))
    await ledger.log.append(b'{"not": "an event"}')
    try:
        with pytest.raises(FailedPrecondition, match="log entry 1"):
            await restore_quotas(ledger, QuotaCounters(), now=NOW)
    finally:
        await ledger.close()
