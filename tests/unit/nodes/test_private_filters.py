"""The node's private filters: key schedule, own persons left out, segments on refresh, rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from comity.core import voprf
from comity.core.keys import SigningKey
from comity.core.private_filter import selector_input, verify_segment
from comity.nodes.ingest import load_records
from comity.nodes.lookup import TimeRange
from comity.nodes.private_filters import KeySchedule, PrivateFilters
from comity.nodes.schema import DataCategory, SelectorType, default_schema
from comity.nodes.store import RecordStore
from comity.nodes.synthetic import generate
from comity.v1 import comity_pb2 as pb


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _filters(store: RecordStore, clock: _Clock, key: SigningKey) -> PrivateFilters:
    return PrivateFilters(
        node_id="ca-node",
        country="CA",
        store=store,
        schema=default_schema(),
        response_key=key,
        schedule=KeySchedule.from_response_key(key, rotation=timedelta(hours=24)),
        clock=clock,
    )


def _hits(filters: PrivateFilters, key: SigningKey, email: str) -> bool:
    epoch, oprf = filters.current()
    output = voprf.evaluate(oprf, selector_input("EMAIL", email))
    wire = filters.filters()
    segments = [
        verify_segment(f, node_id="ca-node", keys={key.key_id: key.verifying_key}) for f in wire.filters
    ]
    assert all(s.header.epoch == epoch == wire.epoch for s in segments)
    return any(
        s.set.contains(output)
        for s in segments
        if s.header.selector_type == pb.EMAIL and s.header.category == pb.SUBSCRIBER
    )


def test_schedule_rotates_the_key_at_each_epoch() -> None:
    key = SigningKey.generate("ca-node")
    schedule = KeySchedule.from_response_key(key, rotation=timedelta(hours=24))
    t = datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert (
        schedule.epoch(t)
        == schedule.epoch(t + timedelta(hours=13))
        != schedule.epoch(t + timedelta(hours=14))
    )
    assert schedule.expires(schedule.epoch(t)) == datetime(2026, 12, 2, tzinfo=UTC)
    assert schedule.key(5) == schedule.key(5) and schedule.key(5).pk != schedule.key(6).pk
    # Another node (another response key) has unrelated OPRF keys.
    other = KeySchedule.from_response_key(SigningKey.generate("x"), rotation=timedelta(hours=24))
    assert other.key(5).pk != schedule.key(5).pk


def test_filters_hold_the_nodes_selectors_but_not_its_own_persons(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = generate("CA", 12, seed=3)
    store = RecordStore(tmp_path / "s.db")
    load_records(store, data.records, region="CA")
    key = SigningKey.generate("ca-node")
    filters = _filters(store, _Clock(datetime(2026, 12, 1, 10, tzinfo=UTC)), key)
    filters.refresh()
    own = [p for p in data.people if "CA" in (p.nationality, p.residence)]
    others = [p for p in data.people if p not in own]
    assert own and others
    for person in others:
        assert _hits(filters, key, person.selectors[SelectorType.EMAIL]), person.name
    for person in own:
        assert not _hits(filters, key, person.selectors[SelectorType.EMAIL]), person.name
    assert not _hits(filters, key, "nobody@example.org")
    store.close()


def test_refresh_adds_a_segment_and_rotation_starts_over(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first, later = generate("CA", 6, seed=1), generate("CA", 6, seed=2)
    store = RecordStore(tmp_path / "s.db")
    load_records(store, first.records, region="CA")
    key = SigningKey.generate("ca-node")
    clock = _Clock(datetime(2026, 12, 1, 10, tzinfo=UTC))
    filters = _filters(store, clock, key)
    filters.refresh()
    before = len(filters.filters().filters)
    assert filters.refresh() == 0  # nothing new
    load_records(store, later.records, dataset="later", region="CA")
    assert filters.refresh() > 0
    wire = filters.filters()
    assert len(wire.filters) > before
    numbers = {
        verify_segment(f, node_id="ca-node", keys={key.key_id: key.verifying_key}).header.segment
        for f in wire.filters
    }
    # One sequence over the epoch: a refresh continues it, and a requester asks from a number on.
    assert numbers == set(range(len(wire.filters)))
    assert len(filters.filters(from_segment=before).filters) == len(wire.filters) - before
    epoch = wire.epoch
    clock.now += timedelta(days=1)
    rotated = filters.filters()
    assert rotated.epoch == epoch + 1
    # The rotation rebuilt everything in fewer segments (one per type, category and day).
    assert {
        verify_segment(f, node_id="ca-node", keys={key.key_id: key.verifying_key}).header.segment
        for f in rotated.filters
    } == set(range(len(rotated.filters)))
    assert len(rotated.filters) < len(wire.filters)
    assert filters.filters(epoch=epoch).filters == []  # an old epoch's segments are gone
    store.close()


def test_traffic_and_content_segments_are_per_day_and_served_for_a_range(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = generate("CA", 12, seed=5)
    store = RecordStore(tmp_path / "s.db")
    load_records(store, data.records, region="CA")
    key = SigningKey.generate("ca-node")
    filters = _filters(store, _Clock(datetime(2026, 12, 1, 10, tzinfo=UTC)), key)
    filters.refresh()
    keys = {key.key_id: key.verifying_key}
    headers = [verify_segment(f, node_id="ca-node", keys=keys).header for f in filters.filters().filters]
    # SUBSCRIBER: undated, as a hit check's time range does not apply to it; the others by day.
    assert all(not h.HasField("day") for h in headers if h.category == pb.SUBSCRIBER)
    dated = [h for h in headers if h.category != pb.SUBSCRIBER]
    assert dated and all(h.HasField("day") for h in dated)
    days = sorted({h.day.ToDatetime(tzinfo=UTC) for h in dated})
    assert all(d.hour == d.minute == d.second == 0 for d in days)
    observed = {
        (r.observed_at.date(), int(r.category))
        for r, _ in store.selector_entries()
        if r.category != DataCategory.SUBSCRIBER
    }
    assert {(h.day.ToDatetime().date(), h.category) for h in dated} <= observed
    # A range of one day: every undated segment and only that day's dated ones.
    one = days[len(days) // 2]
    served = filters.filters(time_range=TimeRange(one, one + timedelta(days=1) - timedelta(microseconds=1)))
    got = [verify_segment(f, node_id="ca-node", keys=keys).header for f in served.filters]
    assert {h.day.ToDatetime(tzinfo=UTC) for h in got if h.HasField("day")} == {one}
    assert sum(not h.HasField("day") for h in got) == sum(not h.HasField("day") for h in headers)
    # A range that does not hold the whole day leaves that day out.
    partial = TimeRange(one + timedelta(hours=1), one + timedelta(days=1))
    assert all(
        not verify_segment(f, node_id="ca-node", keys=keys).header.HasField("day")
        or verify_segment(f, node_id="ca-node", keys=keys).header.day.ToDatetime(tzinfo=UTC) != one
        for f in filters.filters(time_range=partial).filters
    )
    store.close()
