"""Replaying a node's decisions from the log, with the node's sealed openings.

A ``node_decision`` entry names the node's inbound bundle by digest and commits to the node's
sealed reason; the facts the node decided on are those of the gateway's decision on the same
query (found in the log by the query digest) with what only the node has:

- **rebuilt as the gateway's**: every fact of the gateway's decision entry, checked against the
  entry, its openings and the order (:func:`comity.gateway.replay.rebuilt_facts`);
- **fixed by the node's admission**: ``order_covers_selectors`` and ``order_covers_categories``
  are true (a node refuses an uncovered query before its policy), ``justification_reused`` is
  unknown (a node makes no reuse check), and the emergency facts are the defaults (a node keeps no
  emergency track);
- **counted from the log**: the quota counts, from the same node's decisions earlier the same UTC
  day for the same investigator and agency (the node's own counters restart with its process, so
  after a node restart they may differ: a difference there says so);
- **taken as the node keeps them**: ``now`` is the node's signed decision time, and ``subject``
  (the node's own facts about the target) and the real rule ids come from the node's sealed
  opening, which only the responding country's legal officers hold (the node's database). Without
  it, the entry is skipped, never guessed.

The rebuilt facts are decided again under the node's bundle and compared with the sealed rule ids
and the logged outcome.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from comity.audit.commitments import CommitmentOpening
from comity.audit.events import DecisionEvent, NodeDecisionEvent
from comity.core.errors import ComityError
from comity.gateway.replay import Replayed, parse_facts, rebuilt_facts
from comity.policy.bundle_store import BundleStore
from comity.policy.engine import PolicyEngine
from comity.v1 import comity_pb2 as pb

__all__ = ["NodeCounts", "SealedOpener", "replay_node_decision"]

#: Opens a node's sealed reason: (node, query id, commitment) → the reason's JSON object, or
#: None when the node keeps no opening of that commitment.
SealedOpener = Callable[[str, str, bytes], Mapping[str, Any] | None]

#: The check code the node adds to the sealed rule ids when it could not read its own facts.
_UNREADABLE = "NODE_SUBJECT_UNREADABLE"
#: The annotation (``@hit_check("no_hit")``) of a rule that answers a hit check as a no-hit.
_NO_HIT = "no_hit"


class NodeCounts:
    """A node's quota counts as the order of the log gives them: decisions per UTC day."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, str, str]] = Counter()

    def before(self, node: NodeDecisionEvent, decision: DecisionEvent) -> tuple[int, int]:
        """(investigator, agency) decisions of ``node.node`` earlier the same UTC day."""
        day = node.at[:10]
        return (
            self._counts[node.node, "i", decision.investigator, day],
            self._counts[node.node, "a", decision.agency, day],
        )

    def count(self, node: NodeDecisionEvent, decision: DecisionEvent) -> None:
        """Count one more decision of ``node.node``."""
        day = node.at[:10]
        self._counts[node.node, "i", decision.investigator, day] += 1
        self._counts[node.node, "a", decision.agency, day] += 1


def replay_node_decision(
    index: int,
    event: NodeDecisionEvent,
    gateway: DecisionEvent | None,
    openings: Sequence[CommitmentOpening],
    *,
    bundles: BundleStore,
    counts: tuple[int, int],
    sealed: SealedOpener | None,
    orders: Mapping[str, pb.LegalOrder] | None = None,
) -> Replayed:
    """Replay one ``node_decision`` entry (see the module docstring).

    ``gateway`` is the gateway's decision on the same query and ``openings`` its openings;
    ``counts`` the node's quota counts before it; ``sealed`` opens the node's sealed reasons.
    """
    result = Replayed(
        index, event.query_id, event.decision, logged_rules=tuple(event.rule_codes), kind="node_decision"
    )
    opening = _opening(event, sealed, result)
    if opening is None:
        return result
    diffs = result.differences
    if gateway is None or not gateway.facts:
        diffs.append("no gateway decision with facts for this query precedes it in the log")
        return result
    facts, _ = rebuilt_facts(gateway, openings, diffs, orders=orders)
    investigator, agency = counts
    facts.update(
        order_covers_selectors=True,
        order_covers_categories=True,
        justification_reused=None,
        emergency_overdue_orders=0,
        emergency_order_rejected=False,
        investigator_queries_today=investigator,
        agency_queries_today=agency,
        now=event.at,
        subject=opening.get("subject"),
    )
    result.taken = [
        f"now={event.at!r} (the node's signed decision time)",
        "subject (the node's own facts about the target, from its sealed opening)",
        f"quota counts {investigator}, {agency} (the node's earlier decisions in the log)",
    ]
    try:
        bundle = bundles.find(event.bundle_digest)
        decision = PolicyEngine(bundle).decide(parse_facts(facts))
    except ComityError as exc:
        diffs.append(f"not replayable: {exc.message}")
        return result
    unreadable = bool(opening.get("unreadable"))
    result.logged_rules = tuple(sorted(opening.get("checks", ())))
    result.replayed_rules = tuple(
        sorted([*decision.internal_reasons, *([_UNREADABLE] if unreadable else [])])
    )
    if result.logged_rules != result.replayed_rules:
        diffs.append(f"rules: sealed {list(result.logged_rules)}, replayed {list(result.replayed_rules)}")
    no_hit = {r.id for r in bundle.rules if r.est.get("annotations", {}).get("hit_check") == _NO_HIT}
    fired = set(decision.internal_reasons)
    answered_as_no_hit = (
        bool(fired) and not unreadable and facts.get("kind") == "HIT_CHECK" and fired <= no_hit
    )
    result.replayed = "ALLOW" if (not fired and not unreadable) or answered_as_no_hit else "DENY"
    if result.replayed != event.decision:
        diffs.append(f"decision: logged {event.decision}, replayed {result.replayed}")
    return result


def _opening(
    event: NodeDecisionEvent, sealed: SealedOpener | None, result: Replayed
) -> dict[str, Any] | None:
    """The node's sealed reason for ``event``; None (and the report says why) when not at hand."""
    if sealed is None:
        result.skipped = (
            f"the node's own facts are sealed at {event.node}: give its database (--node-state) to replay"
        )
        return None
    opened = sealed(event.node, event.query_id, bytes.fromhex(event.sealed))
    if opened is None:
        result.differences.append(f"{event.node} keeps no opening of this decision's sealed reason")
        return None
    reason = dict(opened)
    for name, logged in (
        ("query_id", event.query_id),
        ("node_id", event.node),
        ("bundle_digest", event.bundle_digest),
    ):
        if reason.get(name) != logged:
            result.differences.append(
                f"sealed reason: {name} {reason.get(name)!r}, the entry says {logged!r}"
            )
    return reason
