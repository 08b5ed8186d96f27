"""Command-line time ranges: UTC unless zoned, whole days inclusive, reversed ranges refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import typer

from comity.sdk.cli.timerange import parse_range


def test_a_time_without_a_zone_is_utc() -> None:
    assert parse_range("2026-12-01T08:26", None).since == datetime(2026, 12, 1, 8, 26, tzinfo=UTC)


def test_a_zone_given_is_kept() -> None:
    since = parse_range("2026-12-01T08:26+09:00", None).since
    assert since == datetime(2026, 12, 1, 8, 26, tzinfo=timezone(timedelta(hours=9)))


def test_until_a_date_covers_that_whole_day() -> None:
    period = parse_range("2026-06-01", "2026-06-30")
    assert period.holds(datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC))
    assert not period.holds(datetime(2026, 7, 1, tzinfo=UTC))
    assert period.holds(datetime(2026, 6, 1, tzinfo=UTC))
    assert not period.holds(datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC))


def test_until_a_minute_covers_that_minute_exactly() -> None:
    period = parse_range(None, "2026-06-30T12:00")
    assert period.holds(datetime(2026, 6, 30, 12, 0, tzinfo=UTC))
    assert not period.holds(datetime(2026, 6, 30, 12, 0, 0, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("since", "until"), [("2026-07-01", "2026-06-30"), ("2026-06-30T12:00", "2026-06-30T11:59")]
)
def test_a_reversed_range_is_refused(since: str, until: str) -> None:
    with pytest.raises(typer.BadParameter, match="before --since"):
        parse_range(since, until)


@pytest.mark.parametrize("text", ["lastweek", "2026-13-01", "yesterday 10am"])
def test_unreadable_times_are_explained(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="not an ISO 8601 date or time"):
        parse_range(text, None)
