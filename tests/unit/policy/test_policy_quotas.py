"""Daily quota counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from comity.policy.quotas import QuotaCounters

NOW = datetime(2026, 11, 28, 23, 59, tzinfo=UTC)


def test_counts_by_investigator_and_agency_and_reset_each_utc_day() -> None:
    q = QuotaCounters()
    q.count("us.fbi/a", "us.fbi", now=NOW)
    q.count("us.fbi/a", "us.fbi", now=NOW)
    q.count("us.fbi/b", "us.fbi", now=NOW)
    counters = q.before("us.fbi/a", "us.fbi", now=NOW)
    assert (counters.investigator_today, counters.agency_today) == (2, 3)
    assert q.before("ca.rcmp/c", "ca.rcmp", now=NOW).agency_today == 0
    tomorrow = q.before("us.fbi/a", "us.fbi", now=NOW + timedelta(minutes=2))
    assert (tomorrow.investigator_today, tomorrow.agency_today) == (0, 0)
