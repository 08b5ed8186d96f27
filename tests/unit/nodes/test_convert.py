"""Conversions to and from the wire contract."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from comity.core.errors import InvalidArgument
from comity.core.selectors import InvalidSelector
from comity.nodes.convert import categories_from_proto, selectors_from_proto, time_range_from_proto, to_proto
from comity.nodes.lookup import TimeRange
from comity.nodes.schema import DataCategory, Record, Selector, SelectorType
from comity.v1 import comity_pb2 as pb


def test_to_proto_keeps_every_part_of_the_record() -> None:
    at = datetime(2025, 4, 2, 17, 3, 11, 250000, tzinfo=UTC)
    record = Record("r1", "ip_connection_log", DataCategory.TRAFFIC, at, {"ip_address": "192.0.2.1"})
    wire = to_proto(record)
    assert wire.record_id == "r1" and wire.record_type == "ip_connection_log"
    assert wire.category == pb.TRAFFIC
    assert wire.observed_at.ToDatetime(tzinfo=UTC) == at
    assert dict(wire.fields) == {"ip_address": "192.0.2.1"}
    assert pb.Record.FromString(wire.SerializeToString()) == wire


def test_selectors_from_proto_normalise_with_the_node_region() -> None:
    wire = [
        pb.Selector(type=pb.PHONE, value="(416) 555-0123"),
        pb.Selector(type=pb.EMAIL, value="A@Example.org"),
    ]
    assert selectors_from_proto(wire, region="CA") == [
        Selector(SelectorType.PHONE, "+14165550123"),
        Selector(SelectorType.EMAIL, "a@example.org"),
    ]
    with pytest.raises(InvalidSelector, match=r"selector 0 .*unknown selector type"):
        selectors_from_proto([pb.Selector(value="x")], region="US")


def test_categories_from_proto_refuse_unspecified() -> None:
    assert categories_from_proto([pb.SUBSCRIBER, pb.CONTENT, pb.SUBSCRIBER]) == {
        DataCategory.SUBSCRIBER,
        DataCategory.CONTENT,
    }
    with pytest.raises(InvalidArgument, match="data category 1"):
        categories_from_proto([pb.TRAFFIC, pb.DATA_CATEGORY_UNSPECIFIED])


def _ts(t: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(t)
    return out


def test_time_range_from_proto_leaves_unset_sides_open() -> None:
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    assert time_range_from_proto(pb.TimeRange(start=_ts(start), end=_ts(end))) == TimeRange(start, end)
    assert time_range_from_proto(pb.TimeRange(start=_ts(start))) == TimeRange(start, None)
    assert time_range_from_proto(pb.TimeRange()) is None
    assert time_range_from_proto(None) is None
    with pytest.raises(InvalidArgument, match="starts after it ends"):
        time_range_from_proto(pb.TimeRange(start=_ts(end), end=_ts(start)))
