"""What the log records: typed, versioned events, serialised as RFC 8785 canonical JSON.

Every entry is one JSON object with ``"v"`` (the schema version), ``"kind"`` and the event's
fields; bytes are lowercase hex, times are RFC 3339 UTC. The same event always gives the same
bytes, so an entry's leaf hash can be recomputed from its fields.

Selectors never appear in the log: a decision carries one salted commitment per selector
(``commitments.py``), and :func:`decision_event` returns the openings beside the entry bytes.
Append both together, so the openings land in the openings table in the same transaction::

    entry, openings = decision_event(...)
    result = await log.append(entry, openings=openings)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import rfc8785

from comity.audit.commitments import CommitmentOpening, commit_selector
from comity.audit.errors import InvalidEntry

__all__ = [
    "EVENT_VERSION",
    "DecisionEvent",
    "DisclosedEvent",
    "EmergencyEvent",
    "Event",
    "FailedEvent",
    "ForwardedEvent",
    "RefusedEvent",
    "ValidatedEvent",
    "decision_event",
    "decode_event",
    "disclosed_event",
    "emergency_event",
    "encode_event",
    "failed_event",
    "forwarded_event",
    "refused_event",
    "validated_event",
]

#: Bumped when a field changes meaning or is removed; readers refuse versions they do not know.
EVENT_VERSION = 1


def _time(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """A query was received and the policy decided on it (allowed or denied)."""

    kind: ClassVar[str] = "decision"
    query_id: str
    query_digest: str
    at: str
    investigator: str
    agency: str
    target_node: str
    order_id: str
    offence_code: str
    categories: tuple[str, ...]
    decision: Literal["ALLOW", "DENY"]
    rule_codes: tuple[str, ...]
    bundle_digest: str
    selector_commitments: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RefusedEvent:
    """A query was refused before a policy decision (bad signature, order, replay, quota)."""

    kind: ClassVar[str] = "refused"
    query_id: str
    query_digest: str
    at: str
    investigator: str
    agency: str
    reason_code: str


@dataclass(frozen=True, slots=True)
class ForwardedEvent:
    """An allowed query was sent to a node."""

    kind: ClassVar[str] = "forwarded"
    query_id: str
    query_digest: str
    at: str
    node: str


@dataclass(frozen=True, slots=True)
class DisclosedEvent:
    """A node answered: what was released (a digest and a count, never the records)."""

    kind: ClassVar[str] = "disclosed"
    query_id: str
    query_digest: str
    at: str
    node: str
    hit: bool
    record_count: int
    records_digest: str
    node_signature: str


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """A forwarded query failed (node unreachable, refused by the node, no answer)."""

    kind: ClassVar[str] = "failed"
    query_id: str
    query_digest: str
    at: str
    node: str
    reason: str


@dataclass(frozen=True, slots=True)
class EmergencyEvent:
    """An emergency order's first use; an authority must validate it by ``validate_by``."""

    kind: ClassVar[str] = "emergency"
    query_id: str
    order_id: str
    order_digest: str
    at: str
    investigator: str
    agency: str
    issuing_country: str
    authority: str
    validate_by: str


@dataclass(frozen=True, slots=True)
class ValidatedEvent:
    """An authority's review of an emergency order after the fact: confirmed or not, in time or late."""

    kind: ClassVar[str] = "validated"
    order_id: str
    order_digest: str
    validation_digest: str
    at: str
    agency: str
    authority: str
    confirmed: bool
    late: bool


Event = (
    DecisionEvent
    | RefusedEvent
    | ForwardedEvent
    | DisclosedEvent
    | FailedEvent
    | EmergencyEvent
    | ValidatedEvent
)
_KINDS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        DecisionEvent, RefusedEvent, ForwardedEvent, DisclosedEvent,
        FailedEvent, EmergencyEvent, ValidatedEvent,
    )
}  # fmt: skip


def encode_event(event: Event) -> bytes:
    """The entry bytes: RFC 8785 canonical JSON of ``{"v", "kind", fields...}``."""
    body: dict[str, Any] = {"v": EVENT_VERSION, "kind": event.kind, **asdict(event)}
    return bytes(rfc8785.dumps(body))


def decode_event(entry: bytes) -> Event:
    """Parse an entry back into its event; raises :class:`InvalidEntry` for anything else."""
    try:
        body = json.loads(entry)
    except ValueError:
        raise InvalidEntry("the log entry is not JSON") from None
    if not isinstance(body, dict) or body.get("v") != EVENT_VERSION or body.get("kind") not in _KINDS:
        raise InvalidEntry("the log entry is not a known Comity event (kind or version)")
    cls = _KINDS[body["kind"]]
    names = {f.name for f in fields(cls)}
    if set(body) - {"v", "kind"} != names:
        raise InvalidEntry(f"the {body['kind']} event has unexpected or missing fields")
    values: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in body.items() if k in names
    }
    return cls(**values)


def decision_event(
    *,
    query_id: str,
    query_digest: bytes,
    at: datetime,
    investigator: str,
    agency: str,
    target_node: str,
    order_id: str,
    offence_code: str,
    categories: Sequence[str],
    allowed: bool,
    rule_codes: Sequence[str],
    bundle_digest: str,
    selectors: Sequence[tuple[str, str]],
) -> tuple[bytes, list[CommitmentOpening]]:
    """A decision entry and the openings of its selector commitments (``(type, normalised value)``)."""
    openings = [commit_selector(kind, value) for kind, value in selectors]
    event = DecisionEvent(
        query_id=query_id,
        query_digest=query_digest.hex(),
        at=_time(at),
        investigator=investigator,
        agency=agency,
        target_node=target_node,
        order_id=order_id,
        offence_code=offence_code,
        categories=tuple(categories),
        decision="ALLOW" if allowed else "DENY",
        rule_codes=tuple(rule_codes),
        bundle_digest=bundle_digest,
        selector_commitments=tuple(o.commitment.hex() for o in openings),
    )
    return encode_event(event), openings


def refused_event(
    *, query_id: str, query_digest: bytes, at: datetime, investigator: str, agency: str, reason_code: str
) -> bytes:
    """A refusal before any policy decision, with the stable reason code sent to the caller."""
    return encode_event(
        RefusedEvent(query_id, query_digest.hex(), _time(at), investigator, agency, reason_code)
    )


def forwarded_event(*, query_id: str, query_digest: bytes, at: datetime, node: str) -> bytes:
    """An allowed query forwarded to ``node``."""
    return encode_event(ForwardedEvent(query_id, query_digest.hex(), _time(at), node))


def disclosed_event(
    *,
    query_id: str,
    query_digest: bytes,
    at: datetime,
    node: str,
    hit: bool,
    record_count: int,
    records_digest: bytes,
    node_signature: bytes,
) -> bytes:
    """What a node released: count, digest of the records and the node's signature over its statement."""
    return encode_event(
        DisclosedEvent(
            query_id,
            query_digest.hex(),
            _time(at),
            node,
            hit,
            record_count,
            records_digest.hex(),
            node_signature.hex(),
        )
    )


def failed_event(*, query_id: str, query_digest: bytes, at: datetime, node: str, reason: str) -> bytes:
    """A forwarded query that failed, with the status or reason code."""
    return encode_event(FailedEvent(query_id, query_digest.hex(), _time(at), node, reason))


def emergency_event(
    *,
    query_id: str,
    order_id: str,
    order_digest: bytes,
    at: datetime,
    investigator: str,
    agency: str,
    issuing_country: str,
    authority: str,
    validate_by: datetime,
) -> bytes:
    """The first use of an emergency order, and the deadline for its validation."""
    return encode_event(
        EmergencyEvent(
            query_id,
            order_id,
            order_digest.hex(),
            _time(at),
            investigator,
            agency,
            issuing_country,
            authority,
            _time(validate_by),
        )
    )


def validated_event(
    *,
    order_id: str,
    order_digest: bytes,
    validation_digest: bytes,
    at: datetime,
    agency: str,
    authority: str,
    confirmed: bool,
    late: bool,
) -> bytes:
    """An authority's post-hoc decision on an emergency order."""
    return encode_event(
        ValidatedEvent(
            order_id,
            order_digest.hex(),
            validation_digest.hex(),
            _time(at),
            agency,
            authority,
            confirmed,
            late,
        )
    )
