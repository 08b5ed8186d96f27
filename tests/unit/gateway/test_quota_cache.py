"""The process's guess of the quota counts: reservations, what the log said, and counts given back."""

from __future__ import annotations

from datetime import UTC, datetime

from comity.gateway.quota_state import QuotaCache
from comity.policy.wire import Counters

NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)


def test_a_count_given_back_lowers_the_next_guess() -> None:
    cache = QuotaCache()
    day, first = cache.reserve("us.fbi/a", "us.fbi", now=NOW)
    cache.settle("us.fbi/a", "us.fbi", day, first)
    _, second = cache.reserve("us.fbi/a", "us.fbi", now=NOW)
    cache.settle("us.fbi/a", "us.fbi", day, second)
    assert (first, second) == (Counters(0, 0), Counters(1, 1))
    cache.release("us.fbi/a", "us.fbi", day)  # the second query failed: its node was down
    _, third = cache.reserve("us.fbi/a", "us.fbi", now=NOW)
    assert third == Counters(1, 1)


def test_a_release_never_goes_below_zero_nor_touches_another_day() -> None:
    cache = QuotaCache()
    cache.release("us.fbi/a", "us.fbi", "2026-11-28")
    day, counters = cache.reserve("us.fbi/a", "us.fbi", now=NOW)
    assert counters == Counters(0, 0)
    cache.settle("us.fbi/a", "us.fbi", day, counters)
    cache.release("us.fbi/a", "us.fbi", "2026-11-28")
    assert cache.reserve("us.fbi/a", "us.fbi", now=NOW)[1] == Counters(1, 1)
