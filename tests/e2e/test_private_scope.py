"""A private hit check answers as a HIT_CHECK does on the same records, category and time range.

Both kinds run against the same running node, for selectors with records inside and outside
the asked time range and data category; the private one tests only the filter segments of the
asked categories and of the whole UTC days its signed range holds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from comity.core.selectors import Selector as StoreSelector
from comity.core.selectors import SelectorType
from comity.nodes.schema import DataCategory
from comity.nodes.store import RecordStore
from comity.sdk.demo.run import RunningFederation, Scenario, scenarios
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec, Selector, read_order_file
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")

_DAY = timedelta(days=1)


def _scenario(running: RunningFederation) -> Scenario:
    return next(
        s for s in scenarios(running.federation) if s.title.startswith("FBI asks the Canadian node whether")
    )


def _traffic_days(running: RunningFederation, s: Scenario) -> set[datetime]:
    """The UTC days the node's store holds traffic records of the scenario's e-mail address on."""
    email = s.person.selectors[SelectorType.EMAIL]
    path = running.federation.directory / "data" / f"{s.node}.db"
    with RecordStore(path, create=False) as store:
        selector = StoreSelector(SelectorType.EMAIL, email)
        with store.lookup([selector], categories=[DataCategory.TRAFFIC]) as stream:
            observed = [r.observed_at for r in stream]
    return {datetime(t.year, t.month, t.day, tzinfo=UTC) for t in observed}


def _spec(
    running: RunningFederation, s: Scenario, *, kind: str, category: str, since: datetime, until: datetime
) -> QuerySpec:
    fed = running.federation
    path = fed.orders.get(s.order.order_id) or fed.sign_order(s.order, now=datetime.now(UTC))
    return QuerySpec(
        target_node=s.node,
        selectors=[Selector("email", s.person.selectors[SelectorType.EMAIL])],
        categories=[category],
        kind=kind,
        case_reference=s.case_reference,
        facts=s.facts,
        link_to_offence=s.link,
        legal_order=read_order_file(path),
        time_range=(since, until),
    )


async def test_private_answers_match_the_hit_check_by_category_and_time_range(
    running: RunningFederation,
) -> None:
    s = _scenario(running)
    days = sorted(_traffic_days(running, s))
    assert days, "the scenario's target has traffic records at the node"
    inside = days[0]
    # A day without any of the target's traffic records, with no such record on either side of it.
    outside = next(
        d for d in (days[0] - _DAY * k for k in range(2, 400)) if not {d - _DAY, d, d + _DAY} & set(days)
    )
    cases = [
        # (category, since, until, expected hit)
        ("traffic", inside, inside + _DAY, True),  # the CLI's --since D --until D+1: day D
        ("traffic", outside, outside + _DAY, False),  # a day without the target's traffic
        # The day before D up to D's midnight: D is not a whole day of the range, so neither
        # kind reads its records (the private check signs the range it tests: the day before).
        ("traffic", inside - _DAY, inside, inside - _DAY in days),
        # A time range does not apply to subscriber records: a hit on any day.
        ("subscriber", outside, outside + _DAY, True),
    ]
    async with load_profile(running.federation.profiles["us.fbi"]).async_client() as client:
        for category, since, until, expected in cases:
            private = await client.private_hit_check(
                _spec(running, s, kind="private-hit-check", category=category, since=since, until=until)
            )
            # The plain check over the range the private one signed (and tested): its whole days.
            signed = json.loads(private.receipt.entries[0].entry)
            assert signed["facts"]["kind"] == "PRIVATE_HIT_CHECK"
            plain = await client.query(
                _spec(
                    running,
                    s,
                    kind="hit-check",
                    category=category,
                    since=since,
                    until=until,
                )
            )
            case = (category, since.date().isoformat(), until.date().isoformat())
            assert private.hit is plain.hit is expected, case
            assert private.false_positive_rate == 1e-9
            assert private.false_positive_bound <= 2e-9, case  # at most two segments tested


async def test_filters_are_downloaded_for_the_range_only(running: RunningFederation) -> None:
    s = _scenario(running)
    days = sorted(_traffic_days(running, s))
    async with load_profile(running.federation.profiles["us.fbi"]).async_client() as client:
        everything = await client.private_filters(s.node)
        one_day = await client.private_filters(
            s.node, time_range=(days[0], days[0] + _DAY - timedelta(microseconds=1))
        )
    assert 0 < len(one_day.filters) < len(everything.filters)
    headers = [pb.PrivateFilterHeader.FromString(f.header.payload) for f in one_day.filters]
    assert {h.day.ToDatetime(tzinfo=UTC) for h in headers if h.HasField("day")} == {days[0]}
