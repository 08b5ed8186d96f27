"""Facts from the wire contract: a verified query and order become :class:`QueryFacts`.

The gateway and each node build their facts the same way, from messages whose signatures
they have already checked; this module only reads them, it verifies nothing.

It never invents a value. The target facts are copied as signed: a country set the order
leaves empty stays empty (the targeting rule refuses it) and the kind stays as its wire name.
An order without target facts, or with the legacy single-valued attestation (never read), gives
empty sets and an unspecified kind, so NO_TARGETING refuses it whatever else the policy finds;
order verification names the reason (have it re-signed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from comity.core.errors import InvalidArgument
from comity.policy.facts import QueryFacts
from comity.v1 import comity_pb2 as pb

__all__ = ["Counters", "EmergencyStatus", "facts_from_query"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Counters:
    """Quota counters before this query (UTC day)."""

    investigator_today: int = 0
    agency_today: int = 0


@dataclass(frozen=True, slots=True)
class EmergencyStatus:
    """Where the requesting agency stands on the emergency track (the gateway's record of uses)."""

    overdue_orders: int = 0
    order_rejected: bool = False


def _dt(ts: Timestamp, *, present: bool, default: datetime) -> datetime:
    return ts.ToDatetime(tzinfo=UTC) if present else default


def _days(query: pb.Query) -> int:
    tr = query.time_range
    if not (tr.HasField("start") and tr.HasField("end")):
        # An open range asks for everything the node holds: count it as unbounded.
        return 36_500
    span = tr.end.ToDatetime(tzinfo=UTC) - tr.start.ToDatetime(tzinfo=UTC)
    return max(0, math.ceil(span.total_seconds() / 86_400))


def _kind(value: int) -> str:
    try:
        return pb.TargetKind.Name(value)
    except ValueError:
        raise InvalidArgument(f"the order's target kind {value} is not a known kind") from None


def facts_from_query(
    query: pb.Query,
    order: pb.LegalOrder | None,
    *,
    requesting_country: str,
    responding_country: str,
    normalised_selectors: Sequence[tuple[str, str]],
    order_covers_selectors: bool,
    order_covers_categories: bool,
    counters: Counters,
    now: datetime,
    emergency: EmergencyStatus = EmergencyStatus(),
    justification_reused: bool | None = None,
) -> QueryFacts:
    """The facts for ``query`` under ``order`` (None when the query carries none).

    ``normalised_selectors`` are (SelectorType name, normalised value) pairs; coverage flags
    come from the caller's check of the order against the query. Without an order or its target
    facts, nothing is attested: every target set is empty and the kind unspecified.
    ``justification_reused`` is the gateway's reuse check (None where none is made: a node).
    """
    o = order or pb.LegalOrder()
    # An order carrying the legacy attestation is ambiguous: its target facts are not read either.
    target = o.target if not o.HasField("attestation") else pb.TargetFacts()
    return QueryFacts(
        requesting_country=requesting_country,
        responding_country=responding_country,
        requesting_agency=query.requesting_agency,
        investigator=query.investigator,
        kind=pb.QueryKind.Name(query.kind),
        selectors=tuple(normalised_selectors),
        categories=tuple(pb.DataCategory.Name(c) for c in query.categories),
        time_range_days=_days(query),
        max_records=query.max_records,
        has_hit_reference=bool(query.hit_reference or query.private_precedent.query_id),
        private_precedent=query.private_precedent.query_id,
        case_reference=query.case_reference,
        justification_facts=query.justification.facts,
        justification_link=query.justification.link_to_offence,
        justification_reused=justification_reused,
        order_id=o.order_id,
        order_offence_code=o.offence_code,
        order_issuing_country=o.issuing_country,
        order_authorisation_type=o.authorisation_type,
        order_emergency=o.emergency,
        order_valid_from=_dt(o.valid_from, present=o.HasField("valid_from"), default=_EPOCH),
        order_valid_until=_dt(o.valid_until, present=o.HasField("valid_until"), default=_EPOCH),
        order_covers_selectors=order is not None and order_covers_selectors,
        order_covers_categories=order is not None and order_covers_categories,
        target_nationalities=tuple(target.nationalities),
        target_residences=tuple(target.residences),
        target_locations=tuple(target.locations),
        target_kind=_kind(target.kind),
        target_incorporated_in=(target.incorporated_in,) if target.incorporated_in else (),
        not_for_third_government=target.not_for_third_government,
        investigator_queries_today=counters.investigator_today,
        agency_queries_today=counters.agency_today,
        emergency_overdue_orders=emergency.overdue_orders,
        emergency_order_rejected=emergency.order_rejected,
        now=now,
    )
