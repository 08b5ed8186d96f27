"""Building and signing an investigator's query."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from comity.core.dsse import PAYLOAD_QUERY, sign_envelope
from comity.core.errors import InvalidArgument
from comity.core.keys import SigningKey
from comity.v1 import comity_pb2 as pb

__all__ = [
    "QuerySpec",
    "Selector",
    "build_query",
    "parse_category",
    "parse_kind",
    "parse_selector",
    "read_order_file",
    "sign_query",
]

# Enum names, which the protobuf constructors accept as well as numbers.
_SELECTOR_TYPES: dict[str, str] = {
    v.name.lower(): v.name for v in pb.SelectorType.DESCRIPTOR.values if v.number
}
_CATEGORIES: dict[str, str] = {v.name.lower(): v.name for v in pb.DataCategory.DESCRIPTOR.values if v.number}
_KINDS = {
    "hit-check": "HIT_CHECK",
    "hit_check": "HIT_CHECK",
    "fetch": "FETCH",
    "private-hit-check": "PRIVATE_HIT_CHECK",
    "private_hit_check": "PRIVATE_HIT_CHECK",
}


@dataclass(frozen=True, slots=True)
class Selector:
    """One exact identifier, e.g. ``Selector("email", "a@example.org")``."""

    type: str
    value: str

    def to_proto(self) -> pb.Selector:
        """The wire form; raises InvalidArgument for an unknown type."""
        try:
            kind = _SELECTOR_TYPES[self.type.lower().replace("-", "_")]
        except KeyError:
            known = ", ".join(sorted(_SELECTOR_TYPES))
            raise InvalidArgument(
                f"unknown selector type {self.type!r}", hint=f"use one of: {known}"
            ) from None
        return pb.Selector(type=kind, value=self.value)


def parse_selector(text: str) -> Selector:
    """``TYPE:VALUE`` as typed on a command line, e.g. ``email:a@example.org``."""
    kind, sep, value = text.partition(":")
    if not sep or not kind or not value:
        raise InvalidArgument(f"selector {text!r} must look like TYPE:VALUE", hint="e.g. email:a@example.org")
    return Selector(kind, value)


def parse_category(text: str) -> str:
    """``subscriber``, ``traffic`` or ``content``."""
    try:
        return _CATEGORIES[text.lower()]
    except KeyError:
        raise InvalidArgument(
            f"unknown data category {text!r}", hint="use subscriber, traffic or content"
        ) from None


def parse_kind(text: str) -> str:
    """``hit-check``, ``fetch`` or ``private-hit-check``."""
    try:
        return _KINDS[text.lower()]
    except KeyError:
        raise InvalidArgument(
            f"unknown query kind {text!r}", hint="use hit-check, fetch or private-hit-check"
        ) from None


@dataclass(frozen=True)
class QuerySpec:
    """What an investigator asks for; the SDK adds ids, times and the signature."""

    target_node: str
    selectors: Sequence[Selector]
    categories: Iterable[str] = ("subscriber",)
    kind: str = "fetch"
    case_reference: str = ""
    facts: str = ""
    link_to_offence: str = ""
    legal_order: pb.Envelope | None = None
    time_range: tuple[datetime, datetime] | None = None
    max_records: int = 0
    hit_reference: str = ""
    # For a FETCH after a private hit check: that check and each selector's salt in it
    # (``PrivateResult.precedent()``), instead of a hit reference.
    private_precedent: pb.PrivatePrecedent | None = None
    # Empty: a fresh UUID each time the spec is built into a query, so one spec (or a copy made
    # with dataclasses.replace) can be submitted again; the gateway accepts a query id once.
    query_id: str = ""


def _timestamp(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when.astimezone(UTC))
    return ts


def build_query(spec: QuerySpec, *, investigator: str, agency: str, now: datetime) -> pb.Query:
    """The Query message for ``spec``, issued by ``investigator`` of ``agency`` at ``now``."""
    query = pb.Query(
        query_id=spec.query_id or str(uuid.uuid4()),
        issued_at=_timestamp(now),
        requesting_agency=agency,
        investigator=investigator,
        target_node=spec.target_node,
        kind=parse_kind(spec.kind),
        selectors=[s.to_proto() for s in spec.selectors],
        categories=[parse_category(c) for c in spec.categories],
        case_reference=spec.case_reference,
        justification=pb.Justification(facts=spec.facts, link_to_offence=spec.link_to_offence),
        max_records=spec.max_records,
        hit_reference=spec.hit_reference,
    )
    if spec.legal_order is not None:
        query.legal_order.CopyFrom(spec.legal_order)
    if spec.private_precedent is not None:
        query.private_precedent.CopyFrom(spec.private_precedent)
    if spec.time_range is not None:
        query.time_range.start.CopyFrom(_timestamp(spec.time_range[0]))
        query.time_range.end.CopyFrom(_timestamp(spec.time_range[1]))
    return query


def sign_query(query: pb.Query, key: SigningKey) -> pb.Envelope:
    """Serialise ``query`` once and sign exactly those bytes."""
    return sign_envelope(PAYLOAD_QUERY, query.SerializeToString(), key)


def read_order_file(path: Path) -> pb.Envelope:
    """A signed legal order as `comity order sign` wrote it (binary or JSON envelope)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read order {path}: {exc.strerror}") from None
    envelope = pb.Envelope()
    try:
        if data.lstrip().startswith(b"{"):
            json_format.Parse(data, envelope)
        else:
            envelope.ParseFromString(data)
    except Exception:
        raise InvalidArgument(
            f"{path} is not a signed order envelope", hint="use the file `comity order sign` wrote"
        ) from None
    return envelope
