"""Key histories: which key was valid when, and the rules a history must meet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from comity.core.keyhistory import DatedKey, KeyHistory, KeyHistoryError, LogKeyHistory, SizedKey
from comity.core.keys import SigningKey, VerifyingKey

JAN = datetime(2026, 1, 1, tzinfo=UTC)
SEP = datetime(2026, 9, 1, tzinfo=UTC)
AUG25 = datetime(2026, 8, 25, tzinfo=UTC)


def key() -> VerifyingKey:
    return SigningKey.generate("us-node").verifying_key


def test_rotation_by_overlap_accepts_both_keys_during_the_window_only() -> None:
    old, new = key(), key()
    history = KeyHistory((DatedKey(old, JAN, SEP), DatedKey(new, AUG25)))
    assert history.current == new
    assert history.at(JAN) == (old,)
    assert history.at(datetime(2026, 8, 28, tzinfo=UTC)) == (old, new)
    # valid_until is exclusive.
    assert history.at(SEP) == (new,)
    assert history.at(SEP - timedelta(microseconds=1)) == (old, new)
    assert history.at(JAN - timedelta(seconds=1)) == ()
    assert history.all() == (old, new)


def test_a_single_key_is_valid_since_the_beginning() -> None:
    only = key()
    history = KeyHistory.single(only)
    assert history.current == only
    assert history.at(datetime(1970, 1, 1, tzinfo=UTC)) == (only,)


def test_the_time_asked_about_needs_an_offset() -> None:
    with pytest.raises(ValueError, match="offset"):
        KeyHistory.single(key()).at(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("entries", "index", "field", "why"),
    [
        (lambda a, b: (), None, "", "at least one key"),
        (lambda a, b: (DatedKey(a, JAN, SEP),), 0, "", "no key is current"),
        (lambda a, b: (DatedKey(a, JAN), DatedKey(b, SEP)), 1, "", "both have no end"),
        (lambda a, b: (DatedKey(a, SEP, JAN), DatedKey(b, JAN)), 0, "valid_until", "later than valid_from"),
        (lambda a, b: (DatedKey(a, JAN, AUG25), DatedKey(b, SEP)), 1, "valid_from", "gap"),
        (lambda a, b: (DatedKey(a, JAN, SEP), DatedKey(a, AUG25)), 1, "key", "already listed"),
        (lambda a, b: (DatedKey(a, datetime(2026, 1, 1)),), 0, "valid_from", "offset"),
    ],
    ids=["empty", "none-current", "two-current", "inverted", "gap", "same-key-twice", "naive"],
)
def test_a_bad_dated_history_is_refused_naming_the_entry(
    entries: object, index: int | None, field: str, why: str
) -> None:
    with pytest.raises(KeyHistoryError, match=why) as info:
        KeyHistory(entries(key(), key()))  # type: ignore[operator]
    assert (info.value.index, info.value.field) == (index, field)


def test_a_gap_is_found_whatever_order_the_file_lists_keys_in() -> None:
    a, b, c = key(), key(), key()
    mid = datetime(2026, 5, 1, tzinfo=UTC)
    # Sorted: a [JAN, mid), c [AUG25, SEP), b [SEP, ...): nothing covers mid .. AUG25.
    with pytest.raises(KeyHistoryError, match="gap") as info:
        KeyHistory((DatedKey(b, SEP), DatedKey(a, JAN, mid), DatedKey(c, AUG25, SEP)))
    assert info.value.index == 2
    # A long-lived key covering the middle closes that gap.
    d = key()
    KeyHistory((DatedKey(b, SEP), DatedKey(a, JAN, mid), DatedKey(c, AUG25, SEP), DatedKey(d, JAN, AUG25)))


def test_log_keys_are_chosen_by_tree_size() -> None:
    old, new = key(), key()
    history = LogKeyHistory((SizedKey(old, 0, 1200), SizedKey(new, 1200)))
    assert history.current == new
    assert history.for_size(0) == (old,)
    assert history.for_size(1199) == (old,)
    assert history.for_size(1200) == (new,)
    assert history.for_size(10**9) == (new,)
    overlapping = LogKeyHistory((SizedKey(old, 0, 1300), SizedKey(new, 1200)))
    assert overlapping.for_size(1250) == (old, new)
    assert LogKeyHistory.single(old).for_size(0) == (old,)


@pytest.mark.parametrize(
    ("entries", "index", "field", "why"),
    [
        (lambda a, b: (SizedKey(a, 0, 10),), 0, "", "no key is current"),
        (lambda a, b: (SizedKey(a, 0), SizedKey(b, 10)), 1, "", "both have no end"),
        (lambda a, b: (SizedKey(a, 10, 10), SizedKey(b, 10)), 0, "until_size", "greater than from_size"),
        (lambda a, b: (SizedKey(a, -1, 10), SizedKey(b, 10)), 0, "from_size", "0 or more"),
        (lambda a, b: (SizedKey(a, 0, 10), SizedKey(b, 11)), 1, "from_size", "sizes 10 to 10"),
        (lambda a, b: (SizedKey(a, 0, 10), SizedKey(a, 10)), 1, "key", "already listed"),
    ],
    ids=["none-current", "two-current", "empty-range", "negative", "gap", "same-key-twice"],
)
def test_a_bad_log_history_is_refused_naming_the_entry(
    entries: object, index: int | None, field: str, why: str
) -> None:
    with pytest.raises(KeyHistoryError, match=why) as info:
        LogKeyHistory(entries(key(), key()))  # type: ignore[operator]
    assert (info.value.index, info.value.field) == (index, field)
