"""NO_TARGETING at the node: the node checks what its own records say about the target.

The requester attests who the target is; the node also knows. Before it answers, the node
reads the subject records the selectors identify (:mod:`comity.nodes.subjects`) and decides
under its inbound bundle with those facts (``context.subject``). When a rule that reads them
refuses (``NO_TARGETING_RECORDS``: the target is one of the responding country's persons;
``NO_TARGETING_RECORDS_LIMIT``: the order has met that rule too often):

- a HIT_CHECK that only rules marked ``@hit_check("no_hit")`` refuse is answered exactly as a
  no-hit: a refusal would itself say "this node holds the selector and it is one of its own";
- anything else is refused with the bundle's one generic code and text, the same answer the
  requester gets when NO_TARGETING refuses their attestation;
- other rules that refuse at the same time are reported as they would be without the
  node's facts, so the list of refusing rules never depends on what the node knows;
- the real reason is sealed for the responding country's legal officers
  (:mod:`comity.nodes.sealed`), and the outcome counts against the order (:mod:`comity.nodes.state`).

Facts that cannot be read are a refusal with the generic code (fail closed), never an answer.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import grpc

from comity.core.errors import PermissionDenied, RuleViolationInfo
from comity.core.refusals import Check, register
from comity.nodes.schema import Selector
from comity.nodes.sealed import SealedOpening, seal
from comity.nodes.state import NodeState
from comity.nodes.subjects import SubjectFacts, SubjectFactsUnreadable, SubjectReader
from comity.policy.bundle import PolicyBundle
from comity.policy.engine import Decision
from comity.policy.subject import KnownSubject
from comity.v1 import comity_pb2 as pb

__all__ = ["SUBJECT_UNREADABLE", "Answer", "NodeRefusal", "Targeting", "Verdict"]

_log = logging.getLogger("comity.node")

_BASIS = "The agreement's no-targeting rule (the inbound bundle's NO_TARGETING names its source)"
SUBJECT_UNREADABLE = "NODE_SUBJECT_UNREADABLE"
register(
    Check(
        SUBJECT_UNREADABLE,
        "NO_TARGETING",
        grpc.StatusCode.PERMISSION_DENIED,
        "The node could not read what its own records say about the target, so it did not answer.",
        _BASIS,
        generic=True,
    )
)
_NO_HIT = "no_hit"


class Answer(enum.StrEnum):
    """How an admitted query is answered."""

    ANSWERED = "ANSWERED"
    NO_HIT = "NO_HIT"  # a hit check answered as a no-hit, whatever the store holds


class NodeRefusal(PermissionDenied):
    """A refusal of the node's inbound policy, with its sealed reason for the log."""

    def __init__(
        self,
        message: str,
        *,
        violations: list[RuleViolationInfo],
        bundle_digest: str,
        query_id: str,
        sealed: pb.SealedReason,
        decision: Decision,
    ) -> None:
        super().__init__(message, violations=violations, bundle_digest=bundle_digest, query_id=query_id)
        self.sealed = sealed
        self.decision = decision
        """The decision the refusal follows (decided again when the order's count moved)."""


@dataclass(frozen=True)
class Verdict:
    """What the node answers, and the sealed part that goes with the answer."""

    answer: Answer
    sealed: pb.SealedReason
    decision: Decision
    """The decision the answer follows (decided again when the order's count moved)."""


class Targeting:
    """The node's own-person check, its sealing and its per-order count."""

    def __init__(
        self,
        *,
        reader: SubjectReader,
        state: NodeState,
        bundle: PolicyBundle,
        node_id: str,
        country: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._reader = reader
        self._state = state
        self._bundle = bundle
        self._node_id = node_id
        self._country = country.upper()
        self._clock = clock
        self._subject_rules = frozenset(
            r.id for r in bundle.rules if any(path[:1] == ("subject",) for path in r.context_paths)
        )
        self._no_hit_rules = frozenset(
            r.id for r in bundle.rules if r.est.get("annotations", {}).get("hit_check") == _NO_HIT
        )
        self._counted = frozenset(self._no_hit_rules)

    @property
    def subject_rules(self) -> frozenset[str]:
        """The bundle's rules that decide on the node's facts about the target."""
        return self._subject_rules

    def known_subject(self, selectors: Sequence[Selector], order_id: str) -> tuple[KnownSubject, str]:
        """The node's facts about the target, and the reason they could not be read ("" if read)."""
        outcomes = self._state.outcomes(order_id)
        try:
            facts = self._reader.facts(selectors)
        except SubjectFactsUnreadable as exc:
            _log.warning("subject facts unreadable: %s", exc)
            return _subject(SubjectFacts(), outcomes), str(exc)
        return _subject(facts, outcomes), ""

    def unknown_subject(self, order_id: str) -> KnownSubject:
        """No facts about the target (a private hit check names no selector), with the order's count."""
        return _subject(SubjectFacts(), self._state.outcomes(order_id))

    def judge(
        self,
        decision: Decision,
        *,
        kind: str,
        query_id: str,
        order_id: str,
        subject: KnownSubject,
        unreadable: str = "",
        redecide: Callable[[KnownSubject], Decision] | None = None,
    ) -> Verdict:
        """The answer to an admitted query, or raise :class:`NodeRefusal`.

        ``unreadable`` is why the subject facts could not be read (then the query is refused).
        ``redecide`` decides the same query on other subject facts: when this query's own-person
        outcome is counted and the order's count has moved since ``subject`` was read (queries
        under one order running at once), the query is decided again on the count it really
        follows, so no more queries pass the order's limit than the limit, however many run at once.
        """
        fired = set(decision.internal_reasons)
        if not fired and not unreadable:
            checks: list[str] = []
            details = self._details(decision, subject, unreadable)
            return Verdict(Answer.ANSWERED, self._seal(query_id, Answer.ANSWERED, checks, details), decision)
        if fired & self._subject_rules & self._counted:
            before = self._state.count_outcome(order_id) - 1
            if before != subject.order_outcomes and redecide is not None:
                subject = dataclasses.replace(subject, order_outcomes=before)
                decision = redecide(subject)
                fired = set(decision.internal_reasons)
        subject_fired = fired & self._subject_rules
        checks = sorted(fired | ({SUBJECT_UNREADABLE} if unreadable else set()))
        details = self._details(decision, subject, unreadable)
        others = fired - self._subject_rules
        if not others and not unreadable and kind == "HIT_CHECK" and subject_fired <= self._no_hit_rules:
            return Verdict(Answer.NO_HIT, self._seal(query_id, Answer.NO_HIT, checks, details), decision)
        sealed = self._seal(query_id, "REFUSED", checks, details)
        raise NodeRefusal(
            f"refused by {self._node_id}'s inbound policy",
            violations=self._public(decision, others),
            bundle_digest=decision.bundle_digest,
            query_id=query_id,
            sealed=sealed,
            decision=decision,
        )

    @staticmethod
    def _details(decision: Decision, subject: KnownSubject, unreadable: str) -> dict[str, object]:
        return {
            "subject": subject.context(),
            "unreadable": unreadable,
            "bundle_digest": decision.bundle_digest,
        }

    def _public(self, decision: Decision, others: set[str]) -> list[RuleViolationInfo]:
        """The violations the requester sees: those of the other rules, as they would be without
        the node's facts; only the generic code when nothing else refused."""
        generic = self._bundle.manifest.generic
        public = [v for v in decision.violations if v.code != generic.code]
        if not others or any(r in generic.rules for r in others):
            public.insert(0, RuleViolationInfo(generic.code, generic.message, generic.legal_basis))
        return public

    def _seal(
        self, query_id: str, outcome: str, checks: list[str], details: dict[str, object]
    ) -> pb.SealedReason:
        opening: SealedOpening = seal(
            query_id=query_id, node_id=self._node_id, outcome=str(outcome), checks=checks, **details
        )
        self._state.keep_opening(query_id, opening, at=self._clock())
        return opening.to_proto()


def _subject(facts: SubjectFacts, outcomes: int) -> KnownSubject:
    return KnownSubject(
        nationalities=tuple(sorted(facts.nationalities)),
        residences=tuple(sorted(facts.residences)),
        countries=tuple(sorted(facts.countries)),
        records=facts.records,
        order_outcomes=outcomes,
    )
