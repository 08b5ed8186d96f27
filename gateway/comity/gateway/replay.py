"""Replaying decisions from the log: rebuild the facts, re-decide under the logged bundle, compare.

For each ``decision`` entry, :func:`replay_decision` does what the gateway did, from the log alone
(:func:`comity.gateway.replay_run.replay_log` runs it over a range of the log):

1. **Facts from the entry.** The entry's clear ``facts`` are checked against the entry's own
   fields (investigator, agency, node's country is not logged, categories, order id, offence,
   case reference, kind of query).
2. **Facts from the openings.** Every commitment is opened with the openings kept beside the
   log (selectors, justification, target attestation) and must match; the selectors, the
   justification texts and the attestation come from the openings.
3. **Facts from the order**, when its envelope is given (found by the entry's order digest):
   offence, issuing country, type of authorisation, emergency flag, validity, attestation.
4. **Stateful facts from the order of the log.** The quota counts (queries of the investigator
   and of the agency earlier the same UTC day) are counted from the entries before this one,
   less those a ``failed`` entry gave back (``quota_released``), and compared with the logged
   counts. Facts no entry can derive (the emergency track's
   overdue and rejected orders, justification reuse, the decision time) are taken as logged,
   and the report lists them with their values (:attr:`Replayed.taken`). A node's decisions
   are replayed by :mod:`comity.gateway.replay_node`.
5. **Re-decide** with the bundle whose digest the entry names (:class:`BundleStore`), and
   compare the outcome and the rule ids with those logged.

Every difference is reported; nothing is repaired.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from comity.audit.commitments import CommitmentOpening
from comity.audit.events import (
    JUSTIFICATION_OPENING,
    RULES_OPENING,
    TARGET_OPENING,
    DecisionEvent,
)
from comity.core.errors import ComityError
from comity.policy.bundle_store import BundleStore
from comity.policy.engine import Decision, PolicyEngine
from comity.policy.facts import QueryFacts
from comity.v1 import comity_pb2 as pb

__all__ = ["NOT_DERIVABLE", "LogOrder", "Replayed", "parse_facts", "rebuilt_facts", "replay_decision"]

#: Facts that no entry can derive: replay takes their logged values (and says so).
NOT_DERIVABLE = ("emergency_overdue_orders", "emergency_order_rejected", "justification_reused", "now")


@dataclass
class Replayed:
    """One decision entry replayed: the outcome then and now, and every difference found."""

    index: int
    query_id: str
    logged: str
    replayed: str = ""
    logged_rules: tuple[str, ...] = ()
    replayed_rules: tuple[str, ...] = ()
    differences: list[str] = field(default_factory=list)
    kind: str = "decision"
    """The entry's kind: ``decision`` (the gateway's) or ``node_decision``."""
    taken: list[str] = field(default_factory=list)
    """The facts replay could not derive and took as logged (or as the node keeps them), with values."""
    skipped: str = ""
    """Why the entry was not replayed at all (not a difference: what replay was not given)."""

    @property
    def identical(self) -> bool:
        """Whether the replay found no difference (a skipped entry is not identical)."""
        return not self.differences and not self.skipped

    def to_json(self) -> dict[str, Any]:
        """The report as JSON values."""
        return {
            "index": self.index,
            "kind": self.kind,
            "query_id": self.query_id,
            "logged": self.logged,
            "replayed": self.replayed,
            "logged_rules": list(self.logged_rules),
            "replayed_rules": list(self.replayed_rules),
            "taken_as_logged": list(self.taken),
            "skipped": self.skipped,
            "identical": self.identical,
            "differences": self.differences,
        }


class LogOrder:
    """Quota counts as the gateway kept them: decisions per investigator and agency per UTC day."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def before(self, event: DecisionEvent) -> tuple[int, int]:
        day = event.at[:10]
        return self._counts["i", event.investigator, day], self._counts["a", event.agency, day]

    def count(self, event: DecisionEvent) -> None:
        day = event.at[:10]
        self._counts["i", event.investigator, day] += 1
        self._counts["a", event.agency, day] += 1

    def release(self, event: DecisionEvent) -> None:
        """A ``failed`` entry gave ``event``'s count back (its ``quota_released``)."""
        day = event.at[:10]
        for key in (("i", event.investigator, day), ("a", event.agency, day)):
            self._counts[key] = max(0, self._counts[key] - 1)


def _opened(event: DecisionEvent, openings: Sequence[CommitmentOpening], diffs: list[str]) -> dict[str, Any]:
    """Facts from the openings, each checked against its commitment."""
    commitments = event.commitments
    if len(openings) != len(commitments):
        diffs.append(f"openings: {len(openings)} kept for {len(commitments)} commitments (pruned?)")
        return {}
    for position, (opening, commitment) in enumerate(zip(openings, commitments, strict=True)):
        if opening.commitment.hex() != commitment:
            diffs.append(f"opening {position} does not open its commitment")
    derived: dict[str, Any] = {}
    selectors = openings[: len(event.selector_commitments)]
    derived["selectors"] = [[o.selector_type, o.value] for o in selectors]
    for opening in openings[len(event.selector_commitments) :]:
        value = json.loads(opening.value)
        if opening.selector_type == JUSTIFICATION_OPENING:
            derived["justification_facts"] = value["facts"]
            derived["justification_link"] = value["link_to_offence"]
        elif opening.selector_type == TARGET_OPENING:
            for name in ("nationalities", "residences", "locations", "incorporated_in", "kind"):
                derived[f"target_{name}"] = value[name]
        elif opening.selector_type == RULES_OPENING:
            # Not a fact: the real rule ids behind the requester's generic code, compared after.
            derived[_SEALED] = value["rule_codes"]
    return derived


_SEALED = "sealed rule ids"


def _from_entry(event: DecisionEvent) -> dict[str, Any]:
    """Facts the entry's own fields say."""
    return {
        "investigator": event.investigator,
        "requesting_agency": event.agency,
        "categories": list(event.categories),
        "order_id": event.order_id,
        "order_offence_code": event.offence_code,
        "case_reference": event.case_reference,
    }


def _time(ts: Any) -> str:
    at: datetime = ts.ToDatetime(tzinfo=UTC)
    return at.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _from_order(order: pb.LegalOrder) -> dict[str, Any]:
    """Facts the signed legal order says."""
    return {
        "order_id": order.order_id,
        "order_offence_code": order.offence_code,
        "order_issuing_country": order.issuing_country,
        "order_authorisation_type": order.authorisation_type,
        "order_emergency": order.emergency,
        "order_valid_from": _time(order.valid_from),
        "order_valid_until": _time(order.valid_until),
        **_target(order),
    }


def _target(order: pb.LegalOrder) -> dict[str, Any]:
    """The target facts the order attests (none for an order with the legacy attestation)."""
    target = order.target if not order.HasField("attestation") else pb.TargetFacts()
    return {
        "target_nationalities": list(target.nationalities),
        "target_residences": list(target.residences),
        "target_locations": list(target.locations),
        "target_kind": pb.TargetKind.Name(target.kind),
        "target_incorporated_in": [target.incorporated_in] if target.incorporated_in else [],
        "not_for_third_government": target.not_for_third_government,
    }


def _compare(source: str, derived: Mapping[str, Any], facts: dict[str, Any], diffs: list[str]) -> None:
    for name, value in derived.items():
        if name in facts and facts[name] != value:
            diffs.append(f"{name}: logged {facts[name]!r}, {source} says {value!r}")
        facts[name] = value


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _parse(facts: Mapping[str, Any]) -> QueryFacts:
    times = {"now", "order_valid_from", "order_valid_until"}
    values = {
        k: datetime.fromisoformat(v.replace("Z", "+00:00")) if k in times else v for k, v in facts.items()
    }
    return QueryFacts.from_mapping(values)


def replay_decision(
    index: int,
    event: DecisionEvent,
    openings: Sequence[CommitmentOpening],
    *,
    bundles: BundleStore,
    counts: tuple[int, int],
    orders: Mapping[str, pb.LegalOrder] | None = None,
) -> Replayed:
    """Replay one decision entry (see the module docstring); ``counts`` are the quota counts the
    order of the log gives before it (investigator, agency)."""
    result = Replayed(index, event.query_id, event.decision, logged_rules=tuple(event.rule_codes))
    diffs = result.differences
    if not event.facts:
        diffs.append("the entry keeps no facts: it cannot be replayed")
        return result
    facts, sealed = rebuilt_facts(event, openings, diffs, orders=orders)
    result.taken = [f"{name}={facts.get(name)!r}" for name in NOT_DERIVABLE]
    investigator, agency = counts
    _compare("the order of the log", {"investigator_queries_today": investigator}, facts, diffs)
    _compare("the order of the log", {"agency_queries_today": agency}, facts, diffs)
    try:
        bundle = bundles.find(event.bundle_digest)
        decision = PolicyEngine(bundle).decide(_parse(facts))
    except ComityError as exc:
        diffs.append(f"not replayable: {exc.message}")
        return result
    result.replayed = "ALLOW" if decision.allowed and not event.checks else "DENY"
    if result.replayed != event.decision:
        diffs.append(f"decision: logged {event.decision}, replayed {result.replayed}")
    _compare_rules(event, decision, sealed, result)
    return result


def rebuilt_facts(
    event: DecisionEvent,
    openings: Sequence[CommitmentOpening],
    diffs: list[str],
    *,
    orders: Mapping[str, pb.LegalOrder] | None = None,
) -> tuple[dict[str, Any], Any]:
    """The facts of a gateway decision as the entry, its openings and its order say (steps 1 to
    3 of the module docstring), every disagreement appended to ``diffs``; and the sealed rule ids
    (None when the entry seals none)."""
    facts = dict(event.facts)
    _compare("the entry", _from_entry(event), facts, diffs)
    opened = _opened(event, openings, diffs)
    sealed = opened.pop(_SEALED, None)
    _compare("the openings", opened, facts, diffs)
    order = (orders or {}).get(event.order_digest)
    if order is not None:
        _compare("the order", _from_order(order), facts, diffs)
    return facts, sealed


def parse_facts(facts: Mapping[str, Any]) -> QueryFacts:
    """:class:`QueryFacts` from their JSON values (times as RFC 3339 strings)."""
    return _parse(facts)


def _compare_rules(event: DecisionEvent, decision: Decision, sealed: Any, result: Replayed) -> None:
    """The rules in clear against the replayed public codes, the sealed ones against the real ids.

    An entry written before rules were sealed kept the real ids in clear, and has no sealed rules.
    """
    diffs = result.differences
    if event.rules_commitment:
        result.logged_rules = tuple(sealed or ())
        clear, public = sorted(event.rule_codes), sorted(decision.codes)
        if clear != public:
            diffs.append(f"rules in clear: logged {clear}, replayed {public}")
    result.replayed_rules = tuple(decision.internal_reasons)
    if sorted(result.replayed_rules) != sorted(result.logged_rules):
        diffs.append(f"rules: logged {sorted(result.logged_rules)}, replayed {sorted(result.replayed_rules)}")
