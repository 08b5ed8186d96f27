"""Refusal rate limits: per investigator first, per agency after it, one aggregate per window."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from comity.audit.tree import CompactRange
from comity.core.errors import ResourceExhausted
from comity.gateway.refusal_limits import RefusalLimiter, RefusalLimits

NOW = datetime(2026, 12, 1, 12, 0, 5, tzinfo=UTC)
LIMITS = RefusalLimits(window=timedelta(seconds=60), per_investigator=3, per_agency=5)


def _digest(i: int) -> bytes:
    return hashlib.sha256(b"request %d" % i).digest()


def test_an_investigator_past_the_limit_is_refused_and_cannot_lock_out_the_agency() -> None:
    limiter = RefusalLimiter(LIMITS)
    for i in range(10):  # a flood: only the first 3 count towards the agency
        try:
            limiter.admit("us.fbi/a", "us.fbi", _digest(i), now=NOW)
            limiter.refused("us.fbi/a", "us.fbi", now=NOW)
        except ResourceExhausted as err:
            assert i >= 3 and err.check_codes == ["RATE_LIMITED_INVESTIGATOR"]
    limiter.admit("us.fbi/b", "us.fbi", _digest(99), now=NOW)  # a colleague is still served
    limiter.refused("us.fbi/b", "us.fbi", now=NOW)
    limiter.refused("us.fbi/b", "us.fbi", now=NOW)
    with pytest.raises(ResourceExhausted) as caught:  # 5 of the agency's refusals: its limit
        limiter.admit("us.fbi/c", "us.fbi", _digest(100), now=NOW)
    assert caught.value.check_codes == ["RATE_LIMITED_AGENCY"]
    assert caught.value.rule_codes == ["PARTICULARITY"]
    limiter.admit("ca.rcmp/a", "ca.rcmp", _digest(101), now=NOW)  # other agencies are not affected


def test_each_window_leaves_one_aggregate_with_a_commitment_to_the_digests() -> None:
    limiter = RefusalLimiter(LIMITS)
    for _ in range(3):
        limiter.refused("us.fbi/a", "us.fbi", now=NOW)
    for i in range(4):
        with pytest.raises(ResourceExhausted):
            limiter.admit("us.fbi/a", "us.fbi", _digest(i), now=NOW)
    assert limiter.closed(now=NOW) == []  # the window has not ended
    later = NOW + timedelta(seconds=60)
    limiter.admit("us.fbi/a", "us.fbi", _digest(9), now=later)  # a new window starts from zero
    [window] = limiter.closed(now=later)
    tree = CompactRange()
    for i in range(4):
        tree.append(hashlib.sha256(b"\x00" + _digest(i)).digest())
    assert (window.count, window.requests_root, window.by_requester) == (
        4, tree.root(), (("us.fbi/a", "us.fbi", 4),)
    )  # fmt: skip
    assert window.window_end - window.window_start == timedelta(seconds=60)
    limiter.logged(window)
    assert limiter.closed(now=later) == []
