"""What the log records: typed, versioned events, serialised as RFC 8785 canonical JSON.

Every entry is one JSON object with ``"v"`` (the schema version), ``"kind"`` and the event's
fields; bytes are lowercase hex, times are RFC 3339 UTC. The same event always gives the same
bytes, so an entry's leaf hash can be recomputed from its fields.

Selectors never appear in the log: a decision carries one salted commitment per selector
(``commitments.py``), one to the justification and one to the requester's attestation about
the target, and :func:`decision_event` returns the openings beside the entry bytes, in the
order of :attr:`DecisionEvent.commitments`. Append both together, so the openings land in the
openings table in the same transaction::

    entry, openings = decision_event(...)
    result = await log.append(entry, openings=openings)

A decision also carries ``facts``: every fact the policy decided on that is not personal data,
in clear (``docs/audit.md`` lists them), so that the decision can be replayed from the entry,
its openings and the bundle its ``bundle_digest`` names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from comity.audit.canonical import canonical_json
from comity.audit.commitments import CommitmentOpening, commit_selector
from comity.audit.errors import InvalidEntry

__all__ = [
    "EVENT_VERSION",
    "JUSTIFICATION_OPENING",
    "RULES_OPENING",
    "TARGET_OPENING",
    "DecisionEvent",
    "DisclosedEvent",
    "EmergencyEvent",
    "Event",
    "FailedEvent",
    "ForwardedEvent",
    "NodeDecisionEvent",
    "RefusedEvent",
    "ThrottledEvent",
    "ValidatedEvent",
    "decision_event",
    "decode_event",
    "disclosed_event",
    "emergency_event",
    "encode_event",
    "failed_event",
    "forwarded_event",
    "node_decision_event",
    "refused_event",
    "throttled_event",
    "validated_event",
]

#: Bumped when a field changes meaning or is removed; readers refuse versions they do not know.
EVENT_VERSION = 1

#: The opening ``selector_type`` of a decision's justification commitment (value: canonical
#: JSON ``{"facts": ..., "link_to_offence": ...}``).
JUSTIFICATION_OPENING = "JUSTIFICATION"
#: The opening ``selector_type`` of a decision's target commitment (value: canonical JSON
#: ``{"location": ..., "nationality": ..., "residence": ...}``, as the policy saw them).
TARGET_OPENING = "TARGET"
#: The opening ``selector_type`` of a decision's sealed rules (value: canonical JSON
#: ``{"rule_codes": [...]}``, the real rule ids when the requester was told only a generic code).
RULES_OPENING = "RULES"

#: A refusal's check code and the agreement rule it enforces.
CheckPair = tuple[str, str]


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
    case_reference: str = ""
    authority: str = ""
    order_digest: str = ""
    justification_commitment: str = ""
    target_commitment: str = ""
    checks: tuple[CheckPair, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)
    rules_commitment: str = ""
    agreement: str = ""
    """The id of the agreement the query was decided under ("" under a file without agreements)."""

    @property
    def commitments(self) -> tuple[str, ...]:
        """Every commitment of the entry in the order its openings are stored (position 0 first)."""
        extra = (
            c for c in (self.justification_commitment, self.target_commitment, self.rules_commitment) if c
        )
        return (*self.selector_commitments, *extra)


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
    checks: tuple[CheckPair, ...] = ()
    target_node: str = ""
    """The federation's node the request names ("" when it names none the federation lists, or
    does not decode): as the requester wrote it, authenticated only when its signature verified."""


@dataclass(frozen=True, slots=True)
class ThrottledEvent:
    """Refusals past a rate limit in one window: a count and a commitment, not one entry each.

    ``requests_root`` is the RFC 6962 Merkle tree hash over the refused requests' payload
    digests in arrival order; ``by_requester`` lists ``[investigator, agency, count]``.
    """

    kind: ClassVar[str] = "throttled"
    at: str
    window_start: str
    window_end: str
    count: int
    requests_root: str
    by_requester: tuple[tuple[str, str, int], ...]


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
    #: Whether this failure gave its decision's quota count back (``comity.audit.shared_state``).
    quota_released: bool = False


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


@dataclass(frozen=True, slots=True)
class NodeDecisionEvent:
    """A node's signed decision under its inbound policy (and, when it answered, its statement).

    Every field is read from the node's signed ``NodeDecision`` (``node_decision`` is the
    envelope, hex), so the same signed item always gives the same entry: recovery finds out
    whether the log holds it by its leaf hash.
    """

    kind: ClassVar[str] = "node_decision"
    query_id: str
    query_digest: str
    at: str
    node: str
    decision: Literal["ALLOW", "DENY"]
    rule_codes: tuple[str, ...]
    bundle_digest: str
    sealed: str
    node_decision: str
    node_statement: str


Event = (
    DecisionEvent
    | RefusedEvent
    | ForwardedEvent
    | DisclosedEvent
    | FailedEvent
    | EmergencyEvent
    | ValidatedEvent
    | ThrottledEvent
    | NodeDecisionEvent
)
_KINDS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        DecisionEvent, RefusedEvent, ForwardedEvent, DisclosedEvent,
        FailedEvent, EmergencyEvent, ValidatedEvent, ThrottledEvent,
        NodeDecisionEvent,
    )
}  # fmt: skip
_FIELDS: dict[type[Event], tuple[str, ...]] = {k: tuple(f.name for f in fields(k)) for k in _KINDS.values()}


def encode_event(event: Event) -> bytes:
    """The entry bytes: RFC 8785 canonical JSON of ``{"v", "kind", fields...}``."""
    body: dict[str, Any] = {"v": EVENT_VERSION, "kind": event.kind}
    # Fields as they are, not dataclasses.asdict's deep copy (the costlier half of encoding):
    # every field holds JSON values already, and the encoding does not change them.
    for name in _FIELDS[type(event)]:
        body[name] = getattr(event, name)
    return canonical_json(body)


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
    # Fields with a default were added later: entries written before them lack them.
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    given = set(body) - {"v", "kind"}
    if not required <= given <= names:
        raise InvalidEntry(f"the {body['kind']} event has unexpected or missing fields")
    values: dict[str, Any] = {k: _tuples(v) for k, v in body.items() if k in names}
    return cls(**values)


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


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
    case_reference: str = "",
    authority: str = "",
    order_digest: bytes = b"",
    justification: tuple[str, str] | None = None,
    target: Mapping[str, Any] | None = None,
    checks: Sequence[CheckPair] = (),
    facts: Mapping[str, Any] | None = None,
    sealed_rules: Sequence[str] | None = None,
    agreement: str = "",
) -> tuple[bytes, list[CommitmentOpening]]:
    """A decision entry and the openings of its commitments.

    ``selectors`` are ``(type, normalised value)`` pairs; ``justification`` is ``(facts, link to
    offence)``; ``target`` the attestation (a JSON object: the target facts' sets and kind). ``checks``
    are the ``(check code, rule)`` pairs of refusals found before policy, ``rule_codes`` the
    policy's rules as the requester was told of them; ``sealed_rules`` the real rule ids when they
    differ (a rule whose reason would reveal something about the target), kept only behind a
    commitment; ``facts`` the policy's facts that are not personal data (JSON values);
    ``agreement`` the id of the agreement whose bundle (``bundle_digest``) decided.
    """
    openings = [commit_selector(kind, value) for kind, value in selectors]
    justification_opening = (
        commit_selector(
            JUSTIFICATION_OPENING,
            _canonical({"facts": justification[0], "link_to_offence": justification[1]}),
        )
        if justification is not None
        else None
    )
    target_opening = (
        commit_selector(
            TARGET_OPENING,
            _canonical(target),
        )
        if target is not None
        else None
    )
    rules_opening = (
        commit_selector(RULES_OPENING, _canonical({"rule_codes": list(sealed_rules)}))
        if sealed_rules is not None
        else None
    )
    extra = [o for o in (justification_opening, target_opening, rules_opening) if o is not None]
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
        case_reference=case_reference,
        authority=authority,
        order_digest=order_digest.hex(),
        justification_commitment=justification_opening.commitment.hex() if justification_opening else "",
        target_commitment=target_opening.commitment.hex() if target_opening else "",
        checks=tuple((c, r) for c, r in checks),
        facts=dict(facts or {}),
        rules_commitment=rules_opening.commitment.hex() if rules_opening else "",
        agreement=agreement,
    )
    return encode_event(event), [*openings, *extra]


def _canonical(value: Mapping[str, Any]) -> str:
    return canonical_json(dict(value)).decode()


def refused_event(
    *,
    query_id: str,
    query_digest: bytes,
    at: datetime,
    investigator: str,
    agency: str,
    reason_code: str,
    checks: Sequence[CheckPair] = (),
    target_node: str = "",
) -> bytes:
    """A refusal that stopped before policy: the status name sent (``reason_code``), the
    ``(check code, rule)`` of every check that refused it, and the node the request names."""
    return encode_event(
        RefusedEvent(
            query_id,
            query_digest.hex(),
            _time(at),
            investigator,
            agency,
            reason_code,
            tuple(checks),
            target_node,
        )
    )


def throttled_event(
    *,
    at: datetime,
    window_start: datetime,
    window_end: datetime,
    count: int,
    requests_root: bytes,
    by_requester: Sequence[tuple[str, str, int]],
) -> bytes:
    """One window's refusals past a rate limit, aggregated."""
    return encode_event(
        ThrottledEvent(
            _time(at),
            _time(window_start),
            _time(window_end),
            count,
            requests_root.hex(),
            tuple((i, a, n) for i, a, n in by_requester),
        )
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


def failed_event(
    *, query_id: str, query_digest: bytes, at: datetime, node: str, reason: str, quota_released: bool = False
) -> bytes:
    """A forwarded query that failed, with the status or reason code (and whether it gave its
    decision's quota count back)."""
    return encode_event(FailedEvent(query_id, query_digest.hex(), _time(at), node, reason, quota_released))


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


def node_decision_event(
    *,
    query_id: str,
    query_digest: bytes,
    at: datetime,
    node: str,
    allowed: bool,
    rule_codes: Sequence[str],
    bundle_digest: str,
    sealed: bytes,
    node_decision: bytes,
    node_statement: bytes = b"",
) -> bytes:
    """A node's decision: its outcome, rule ids and bundle, and its signed envelopes (serialised)."""
    return encode_event(
        NodeDecisionEvent(
            query_id,
            query_digest.hex(),
            _time(at),
            node,
            "ALLOW" if allowed else "DENY",
            tuple(rule_codes),
            bundle_digest,
            sealed.hex(),
            node_decision.hex(),
            node_statement.hex(),
        )
    )
