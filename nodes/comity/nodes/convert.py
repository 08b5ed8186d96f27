"""Conversions between the node's types and the wire contract (``comity.v1``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC

from google.protobuf.timestamp_pb2 import Timestamp

from comity.core.errors import InvalidArgument
from comity.core.selectors import normalise_selectors
from comity.nodes.lookup import TimeRange
from comity.nodes.schema import DataCategory, Record, Selector
from comity.v1 import comity_pb2 as pb

__all__ = ["categories_from_proto", "selectors_from_proto", "time_range_from_proto", "to_proto"]


def to_proto(record: Record) -> pb.Record:
    """The wire form of a (released) record."""
    observed = Timestamp()
    observed.FromDatetime(record.observed_at)
    return pb.Record(
        record_id=record.record_id,
        record_type=record.record_type,
        category=pb.DataCategory.Name(int(record.category)),
        observed_at=observed,
        fields=dict(record.fields),
    )


def selectors_from_proto(selectors: Iterable[pb.Selector], *, region: str) -> list[Selector]:
    """Normalised selectors from a query; raises InvalidSelector naming the first bad one."""
    return normalise_selectors(((s.type, s.value) for s in selectors), region=region)


def categories_from_proto(categories: Iterable[int]) -> frozenset[DataCategory]:
    """The query's data categories; refuses DATA_CATEGORY_UNSPECIFIED and unknown numbers."""
    out: set[DataCategory] = set()
    for position, number in enumerate(categories):
        try:
            out.add(DataCategory(number))
        except ValueError:
            raise InvalidArgument(
                f"data category {position} is unspecified or unknown",
                hint="use SUBSCRIBER, TRAFFIC or CONTENT",
            ) from None
    return frozenset(out)


def time_range_from_proto(time_range: pb.TimeRange | None) -> TimeRange | None:
    """An unset bound (seconds == nanos == 0) leaves that side open; None when both are unset."""
    if time_range is None:
        return None
    start = time_range.start.ToDatetime(tzinfo=UTC) if time_range.HasField("start") else None
    end = time_range.end.ToDatetime(tzinfo=UTC) if time_range.HasField("end") else None
    return None if start is None and end is None else TimeRange(start, end)
