"""Hit references bind an order and its selectors, expire, and cannot be forged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from comity.nodes.hitref import FOLLOW_UP_WINDOW, HitReferences, InvalidHitReference

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
SELECTORS = [("EMAIL", "a@example.org"), ("IP_ADDRESS", "192.0.2.1")]


def test_reference_checks_for_same_order_and_selectors_in_any_order() -> None:
    refs = HitReferences(b"node secret")
    ref = refs.issue("ORDER-1", SELECTORS, now=NOW)
    refs.check(ref, "ORDER-1", list(reversed(SELECTORS)), now=NOW + timedelta(hours=1))


@pytest.mark.parametrize(
    ("order", "selectors"),
    [
        ("ORDER-2", SELECTORS),
        ("ORDER-1", SELECTORS[:1]),
        ("ORDER-1", [*SELECTORS, ("PHONE", "+16135550100")]),
    ],
)
def test_reference_does_not_transfer(order: str, selectors: list[tuple[str, str]]) -> None:
    refs = HitReferences(b"node secret")
    ref = refs.issue("ORDER-1", SELECTORS, now=NOW)
    with pytest.raises(InvalidHitReference) as info:
        refs.check(ref, order, selectors, now=NOW)
    assert info.value.rule_codes == ["TWO_STEP"]


def test_reference_expires_after_the_follow_up_window() -> None:
    refs = HitReferences(b"node secret")
    ref = refs.issue("ORDER-1", SELECTORS, now=NOW)
    refs.check(ref, "ORDER-1", SELECTORS, now=NOW + FOLLOW_UP_WINDOW)
    with pytest.raises(InvalidHitReference, match="expired"):
        refs.check(ref, "ORDER-1", SELECTORS, now=NOW + FOLLOW_UP_WINDOW + timedelta(seconds=1))


def test_another_nodes_reference_or_an_edited_expiry_fails() -> None:
    ref = HitReferences(b"other node").issue("ORDER-1", SELECTORS, now=NOW)
    with pytest.raises(InvalidHitReference):
        HitReferences(b"node secret").check(ref, "ORDER-1", SELECTORS, now=NOW)
    mine = HitReferences(b"node secret")
    version, expires, mac = mine.issue("ORDER-1", SELECTORS, now=NOW).split(".")
    extended = f"{version}.{int(expires) + 86_400}.{mac}"
    with pytest.raises(InvalidHitReference):
        mine.check(extended, "ORDER-1", SELECTORS, now=NOW)


@pytest.mark.parametrize("garbage", ["", "h1", "h1..", "x1.123.abc", "h1.notanumber.abc"])
def test_malformed_references_are_refused(garbage: str) -> None:
    with pytest.raises(InvalidHitReference):
        HitReferences(b"s").check(garbage, "ORDER-1", SELECTORS, now=NOW)
