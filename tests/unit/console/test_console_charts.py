"""Charts and the sign-in limit, as pure functions: accessible SVG with its numbers, and a sliding window."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from comity.sdk.console.auth import SignInLimit
from comity.sdk.console.charts import Span, bars_by_day, horizontal_bars, timeline


def test_a_chart_has_a_title_a_description_and_the_same_numbers_as_a_table() -> None:
    chart = horizontal_bars(
        "Refusals by <rule>",
        [("Serious crime", {"count": 7}), ("Particularity & co", {"count": 2})],
        ["count"],
        label="Rule",
    )
    ids = re.search(r'aria-labelledby="([^" ]+) ([^"]+)"', chart.svg)
    assert ids is not None
    assert f'<title id="{ids.group(1)}">Refusals by &lt;rule&gt;</title>' in chart.svg
    assert f'<desc id="{ids.group(2)}">2 rules: 9 in all.</desc>' in chart.svg
    assert "Particularity &amp; co" in chart.svg and "<rule>" not in chart.svg
    assert chart.header == ("Rule", "Count")
    assert chart.rows == [("Serious crime", "7"), ("Particularity & co", "2")]


def test_columns_per_day_stack_the_series_and_say_the_totals() -> None:
    days = [("2026-11-30", {"allowed": 3, "refused": 1}), ("2026-12-01", {"allowed": 0, "refused": 4})]
    chart = bars_by_day("Decisions per day", days, ["allowed", "refused"])
    assert "2 days from 2026-11-30 to 2026-12-01: 3 allowed, 5 refused; at most 4 on one day." in chart.svg
    assert chart.rows == [("2026-11-30", "3", "1"), ("2026-12-01", "0", "4")]
    assert chart.svg.count("<rect") == 4 + 2  # four bars, two legend keys


def test_a_timeline_marks_now_and_colours_each_deadline_by_its_status() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    spans = [
        Span("order-a", now - timedelta(days=3), now - timedelta(days=1), "overdue", "OVERDUE"),
        Span("order-b", now - timedelta(hours=2), now + timedelta(hours=46), "pending", "pending"),
    ]
    chart = timeline("Emergency orders", spans, now, label="Order")
    assert ">now</text>" in chart.svg and "1 overdue, 1 pending" in chart.svg
    assert chart.rows[0] == ("order-a", "2026-11-28 12:00", "2026-11-30 12:00", "OVERDUE")
    assert timeline("Nothing", [], now, label="Order").summary == "Nothing to show."
    assert timeline("One", spans[:1], now, label="Order").summary == "1 order: 1 overdue."


def test_the_sign_in_limit_pauses_one_address_and_slides() -> None:
    limit = SignInLimit(attempts=3, window=timedelta(minutes=10))
    start = datetime(2026, 12, 1, 12, tzinfo=UTC)
    for minute in range(3):
        assert limit.refused_until("10.0.0.1", now=start + timedelta(minutes=minute)) is None
        limit.failed("10.0.0.1", now=start + timedelta(minutes=minute))
    assert limit.refused_until("10.0.0.1", now=start + timedelta(minutes=3)) == start + timedelta(minutes=10)
    assert limit.refused_until("10.0.0.2", now=start + timedelta(minutes=3)) is None  # per address
    # The oldest failure ages out: one more attempt, and its failure pauses again.
    assert limit.refused_until("10.0.0.1", now=start + timedelta(minutes=10, seconds=1)) is None
    limit.failed("10.0.0.1", now=start + timedelta(minutes=10, seconds=1))
    assert limit.refused_until("10.0.0.1", now=start + timedelta(minutes=10, seconds=2)) == start + timedelta(
        minutes=11
    )
    limit.succeeded("10.0.0.1")
    assert limit.refused_until("10.0.0.1", now=start + timedelta(minutes=10, seconds=3)) is None


def test_the_sign_in_limit_keeps_a_bounded_number_of_addresses() -> None:
    limit = SignInLimit(attempts=1, max_clients=2)
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    for i in range(3):
        limit.failed(f"10.0.0.{i}", now=now + timedelta(seconds=i))
    assert limit.refused_until("10.0.0.0", now=now + timedelta(seconds=5)) is None  # forgotten first
    assert limit.refused_until("10.0.0.2", now=now + timedelta(seconds=5)) is not None
