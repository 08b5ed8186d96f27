"""Admission at the node: a node does not trust the gateway's word alone.

Before it reads a record, the node checks, in this order: the gateway's signed decision, and
that it is dated close to the node's own clock; the investigator's signed query (over its
exact bytes); that the decision is about this query; that the query is fresh by the node's
clock too (a captured request cannot be sent again later, and a clock set wrong is named as
such); the legal order, signed by an authority the federation registers; that the order
covers every selector and category; that the decision is in the transparency log, as a
witness (consistent with every checkpoint it accepted before); that an agreement covers the
requesting country and its own (``NO_AGREEMENT`` otherwise); that agreement's inbound policy, fed
with what its own records say about the target (:mod:`comity.nodes.targeting`); and for a
FETCH after a hit check, the hit reference, or after a private hit check, that check in the
node's own log of evaluations (:func:`~comity.nodes.private_state.check_precedent`). Each step
raises; nothing is skipped.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc

from comity.audit.witness import Witness
from comity.core import refusals
from comity.core.dsse import PAYLOAD_DECISION, PAYLOAD_QUERY, EnvelopeError, payload_digest, verify_envelope
from comity.core.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unauthenticated
from comity.core.federation import Federation, Node
from comity.core.federation_watch import FederationWatch
from comity.core.orders import OrderVerifier, check_order_covers
from comity.core.queries import DEFAULT_FRESHNESS, DEFAULT_SKEW, check_freshness
from comity.core.selectors import normalise
from comity.core.telemetry import span
from comity.nodes.convert import categories_from_proto, selectors_from_proto, time_range_from_proto
from comity.nodes.decisions import NodeDecisions
from comity.nodes.hitref import FOLLOW_UP_WINDOW, HitReferences
from comity.nodes.inbound import InboundPolicy
from comity.nodes.logsync import GatewayLog
from comity.nodes.lookup import TimeRange
from comity.nodes.membership import Membership
from comity.nodes.private_state import PrivateLedger, check_precedent
from comity.nodes.proof_cache import ProofCache
from comity.nodes.schema import DataCategory, Selector
from comity.nodes.targeting import NodeRefusal, Verdict
from comity.nodes.witness_service import SIZE_TRAILER
from comity.policy.agreements import Applicable, ByAgreement
from comity.policy.engine import Decision
from comity.policy.quotas import QuotaCounters
from comity.policy.subject import KnownSubject
from comity.policy.wire import facts_from_query
from comity.v1 import comity_pb2 as pb

__all__ = ["Admission", "Admitted"]

_TIME_BASIS = "Prüm Decision 2008/615 art. 30 (what was supplied, the exact time, the officer who searched)"

refusals.register(
    refusals.Check(
        "AGREEMENT_BUNDLE_MISMATCH",
        "NO_AGREEMENT",
        grpc.StatusCode.PERMISSION_DENIED,
        "the gateway decided this query under bundle {given}, but agreement {agreement!r} names "
        "{expected}; the gateway must decide under the federation file's bundles before a node answers",
        "The federation file's agreements: a query is decided under the agreement binding its two countries",
    ),
    refusals.Check(
        "DECISION_STALE",
        "AUDIT_FIELDS",
        grpc.StatusCode.FAILED_PRECONDITION,
        "the gateway decided this query at {decided_at}, {seconds} s before {judge}'s clock: more than "
        "{freshness} ago; the gateway forwards a decision at once, so the clocks of the gateway and "
        "{judge} differ by about {seconds} s: set both by NTP",
        _TIME_BASIS,
    ),
    refusals.Check(
        "DECISION_FROM_FUTURE",
        "AUDIT_FIELDS",
        grpc.StatusCode.FAILED_PRECONDITION,
        "the gateway decided this query at {decided_at}, {seconds} s after {judge}'s clock: the clocks of "
        "the gateway and {judge} differ by about {seconds} s; set both by NTP",
        _TIME_BASIS,
    ),
    refusals.Check(
        "GATEWAY_DECISION_SIGNATURE",
        "AUDIT_FIELDS",
        grpc.StatusCode.UNAUTHENTICATED,
        "node {node!r} ran nothing: the gateway's decision is not signed by a decision key the federation "
        "file lists as valid now ({detail}); the gateway's operator must sign with the key the file names",
        "Prüm Decision 2008/615 art. 30 (the official who decided, recorded for lawfulness monitoring)",
    ),
    refusals.Check(
        "WITNESS_AT_SIZE",
        "AUDIT_FIELDS",
        grpc.StatusCode.FAILED_PRECONDITION,
        "this node's witness is at tree size {size}, and the request's consistency proof does not start "
        "there: forward the query again with the checkpoint and the consistency proof from tree size {size}",
        "Prüm Decision 2008/615 art. 30 (logs for lawfulness monitoring)",
    ),
)


@dataclass(frozen=True)
class _Trusted:
    """What admission checks against from one federation version, replaced whole."""

    federation: Federation
    orders: OrderVerifier
    policies: ByAgreement[InboundPolicy]


@dataclass(frozen=True)
class Admitted:
    """A query that passed every check, with what execution needs."""

    query: pb.Query
    query_digest: bytes
    order: pb.LegalOrder
    selectors: list[Selector]
    categories: frozenset[DataCategory]
    time_range: TimeRange | None
    cosignature: str
    verdict: Verdict
    """How the node answers (a hit check on one of its own persons: as a no-hit) and its sealed reason."""
    inbound: InboundPolicy
    """The inbound policy of the agreement the query was decided under (minimisation, restrictions)."""
    agreement: str = ""
    """That agreement's id ("" under a federation file without agreements)."""
    # The node's signed NodeDecision (ALLOW), kept in the outbox with the answer's statement.
    node_decision: pb.Envelope | None = None

    @property
    def selector_pairs(self) -> list[tuple[str, str]]:
        """(type name, normalised value) pairs, as hit references and policy see them."""
        return [(s.type.name, s.value) for s in self.selectors]


class Admission:
    """The node's checks on an ExecuteRequest, one named step each."""

    def __init__(
        self,
        *,
        node: Node,
        federation: Federation,
        policies: ByAgreement[InboundPolicy],
        witness: Witness,
        gateway_log: GatewayLog,
        hit_references: HitReferences,
        clock: Callable[[], datetime],
        decisions: NodeDecisions | None = None,
        watch: FederationWatch | None = None,
        private_ledger: PrivateLedger | None = None,
        freshness: timedelta = DEFAULT_FRESHNESS,
        membership: Membership | None = None,
    ) -> None:
        self._node = node
        self._membership = membership
        self._freshness = freshness
        self._trusted = _Trusted(federation, OrderVerifier(federation), policies)
        # The version a query being admitted is checked against (see one_version).
        self._pinned: contextvars.ContextVar[_Trusted | None] = contextvars.ContextVar(
            f"comity-admission-{id(self)}", default=None
        )
        self._witness = witness
        self._log = gateway_log
        self._hits = hit_references
        self._clock = clock
        self._quotas = QuotaCounters()
        self._decisions = decisions
        self._watch = watch
        self._private_ledger = private_ledger
        self._kept_proofs = ProofCache()

    @property
    def policies(self) -> ByAgreement[InboundPolicy]:
        """The agreements' inbound policies in use."""
        return self._trusted.policies

    def use_federation(
        self, federation: Federation, policies: ByAgreement[InboundPolicy] | None = None
    ) -> None:
        """Check queries under a newly trusted federation file (investigators, authorities, the
        gateway's decision keys) and, given ``policies`` built for it, under its agreements.

        One assignment; a query being admitted meanwhile goes on under the version it began with.
        """
        kept = self._trusted.policies if policies is None else policies
        self._trusted = _Trusted(federation, OrderVerifier(federation), kept)

    @property
    def _federation(self) -> Federation:
        return (self._pinned.get() or self._trusted).federation

    @property
    def _orders(self) -> OrderVerifier:
        return (self._pinned.get() or self._trusted).orders

    @property
    def _policies(self) -> ByAgreement[InboundPolicy]:
        return (self._pinned.get() or self._trusted).policies

    @contextlib.contextmanager
    def one_version(self) -> Iterator[None]:
        """Within it, every step checks under the federation version in use when it was entered
        (one query, one version, while a newer one may be trusted in another thread)."""
        pinned = self._pinned.set(self._trusted)
        try:
            yield
        finally:
            self._pinned.reset(pinned)

    def admit(self, request: pb.ExecuteRequest) -> Admitted:
        """Run every check, all under one federation version; raise the first failure's error."""
        with self.one_version():
            return self._admit(request)

    def _admit(self, request: pb.ExecuteRequest) -> Admitted:
        if self._watch is not None:  # an expired federation file vouches for no one
            self._watch.require_current()
        if request.report_witness_size:
            # Before any signature is checked: a gateway whose view of the witness is stale learns
            # the witness's size at the cost of one cheap round trip (checked again under the lock).
            self._proof(request, self._witness.proof_needed(request.decision_entry.inclusion.tree_size))
        now = self._clock()
        with span("node.verify_decision"):
            decision = self.verify_decision(request.gateway_decision)
            self.check_decision_time(decision, now=now)
        with span("node.verify_query", query_id=decision.query_id):
            query, digest = self.verify_query(request.signed_query)
            self.check_binding(decision, query, digest)
            self.check_query_time(query, now=now)
        with span("node.verify_order", query_id=query.query_id):
            order = self.verify_order(query, now=now)
            selectors = selectors_from_proto(query.selectors, region=self._node.country)
            categories = categories_from_proto(query.categories)
            self.check_coverage(order, query)
        with span("node.witness", query_id=query.query_id):
            cosignature = self.witness_decision(request, digest)
        pairs = [(s.type.name, s.value) for s in selectors]
        with span("node.policy", query_id=query.query_id):
            applicable = self.agreement(query, now=now, gateway_bundle=decision.bundle_digest)
            verdict, signed = self.decide(
                query, order, selectors, now=now, digest=digest, inbound=applicable.policy
            )
        if query.kind == pb.FETCH and query.hit_reference:
            self._hits.check(query.hit_reference, order.order_id, pairs, now=now)
        if query.HasField("private_precedent"):
            check_precedent(
                self._private_ledger,
                query,
                order_id=order.order_id,
                selectors=pairs,
                now=now,
                window=FOLLOW_UP_WINDOW,
            )
        return Admitted(
            query=query,
            query_digest=digest,
            order=order,
            selectors=selectors,
            categories=categories,
            time_range=time_range_from_proto(query.time_range if query.HasField("time_range") else None),
            cosignature=cosignature,
            verdict=verdict,
            node_decision=signed,
            inbound=applicable.policy,
            agreement=applicable.agreement_id,
        )

    def agreement(self, query: pb.Query, *, now: datetime, gateway_bundle: str) -> Applicable[InboundPolicy]:
        """The agreement covering (the requesting agency's country, this node's) at ``now``, which
        the gateway must have decided under: its signed decision names the agreement's bundle.

        Raises ``NO_AGREEMENT`` when none is in force, ``AGREEMENT_BUNDLE_MISMATCH`` when the
        gateway decided under another bundle: in both cases it should not have forwarded it.
        """
        requesting = self._federation.country_of_agency(query.requesting_agency)
        applicable = self._policies.select(requesting, self._node.country, now)
        if applicable.agreement is not None and gateway_bundle != applicable.agreement.bundle_digest:
            raise refusals.refuse(
                "AGREEMENT_BUNDLE_MISMATCH",
                agreement=applicable.agreement.id,
                expected=applicable.agreement.bundle_digest,
                given=gateway_bundle or "none",
            )
        return applicable

    def verify_order(self, query: pb.Query, *, now: datetime) -> pb.LegalOrder:
        """The legal order, signed by an authority the federation registers, in date (cached by digest)."""
        return self._orders.verify(query.legal_order, now=now).order

    def verify_decision(self, envelope: pb.Envelope) -> pb.GatewayDecision:
        """The gateway's decision, signed by a decision key the federation lists as valid now
        (``GATEWAY_DECISION_SIGNATURE`` otherwise: forged, or a key the file ended or removed)."""
        try:
            payload, _ = verify_envelope(
                envelope,
                payload_type=PAYLOAD_DECISION,
                keys=self._federation.decision_keys_in_force(self._clock),
                what="gateway decision",
            )
        except EnvelopeError as exc:
            raise refusals.refuse(
                "GATEWAY_DECISION_SIGNATURE", node=self._node.id, detail=exc.message
            ) from None
        decision = pb.GatewayDecision.FromString(payload)
        if decision.decision != "ALLOW":
            raise PermissionDenied("the gateway did not allow this query")
        return decision

    @property
    def _judge(self) -> str:
        return f"node {self._node.id}"

    def check_decision_time(self, decision: pb.GatewayDecision, *, now: datetime) -> None:
        """The decision is dated within the freshness window of ``now``, the node's clock.

        The gateway forwards a decision as soon as it is logged, so a decision dated far from
        the node's clock says the two clocks differ (or that a captured request is sent again).
        """
        if not decision.HasField("decided_at"):
            raise Unauthenticated("the gateway's decision has no decided_at")
        decided_at = decision.decided_at.ToDatetime(tzinfo=UTC)
        seconds = round(abs((now - decided_at).total_seconds()))
        when, judge = decided_at.isoformat(), self._judge
        if decided_at < now - self._freshness - DEFAULT_SKEW:
            raise refusals.refuse(
                "DECISION_STALE", freshness=self._freshness, decided_at=when, seconds=seconds, judge=judge
            )
        if decided_at > now + DEFAULT_SKEW:
            raise refusals.refuse("DECISION_FROM_FUTURE", decided_at=when, seconds=seconds, judge=judge)

    def check_query_time(self, query: pb.Query, *, now: datetime) -> None:
        """The investigator's query is fresh by the node's clock too, not by the gateway's word alone."""
        check_freshness(query, now=now, freshness=self._freshness, judge=self._judge)

    def verify_query(self, envelope: pb.Envelope) -> tuple[pb.Query, bytes]:
        """The investigator's query, signed by the registered investigator it names."""
        payload, signer = verify_envelope(
            envelope,
            payload_type=PAYLOAD_QUERY,
            keys=self._federation.investigator_keys(),
            what="signed query",
        )
        query = pb.Query.FromString(payload)
        investigator = self._federation.investigator(signer.key_id)
        if query.investigator != investigator.id or query.requesting_agency != investigator.agency:
            raise Unauthenticated("the query names another investigator or agency than the one who signed it")
        if query.target_node != self._node.id:
            raise InvalidArgument(f"the query is for node {query.target_node!r}, not {self._node.id!r}")
        return query, payload_digest(envelope)

    @staticmethod
    def check_binding(decision: pb.GatewayDecision, query: pb.Query, digest: bytes) -> None:
        """The gateway's decision must name exactly this query."""
        if decision.query_digest != digest or decision.query_id != query.query_id:
            raise Unauthenticated("the gateway's decision is about another query")

    def check_coverage(self, order: pb.LegalOrder, query: pb.Query) -> None:
        """The order must name every selector (after normalisation) and authorise every category."""
        region = self._node.country

        def canonical(selector: pb.Selector) -> str:
            return normalise(selector.type, selector.value, region=region)

        check_order_covers(order, query.selectors, query.categories, normalise=canonical)

    def witness_decision(self, request: pb.ExecuteRequest, digest: bytes) -> str:
        """The decision must be logged, in a checkpoint consistent with all this node has seen."""
        entry = request.decision_entry
        if not request.HasField("checkpoint") or not entry.entry:
            raise FailedPrecondition(
                "the request carries no logged decision; the gateway must log before forwarding"
            )
        try:
            logged = json.loads(entry.entry)
        except ValueError:
            raise InvalidArgument("the decision's log entry is not JSON") from None
        if logged.get("query_digest") != digest.hex() or logged.get("decision") != "ALLOW":
            raise Unauthenticated("the logged entry is not the gateway's decision to allow this query")
        if self._membership is not None:  # removed while this query was being checked: no cosignature
            self._membership.require_member()
        # The proof is chosen under the witness's own lock, for the state it checks it against.
        line = self._witness.witness_entry(
            checkpoint=request.checkpoint.signed_note,
            entry=entry.entry,
            leaf_index=entry.inclusion.leaf_index,
            inclusion=list(entry.inclusion.hashes),
            proof_for=lambda first, second: self._proof(request, (first, second)),
        )
        offered = [request.consistency] if request.HasField("consistency") else []
        self._kept_proofs.keep([*offered, *request.more_consistency], to_size=entry.inclusion.tree_size)
        return line

    def _proof(self, request: pb.ExecuteRequest, needed: tuple[int, int] | None) -> list[bytes] | None:
        """The consistency proof the witness ``needed`` (from :meth:`Witness.proof_needed`).

        The gateway's proof is used when one it sent is that one. Otherwise (queries overtaking each
        other, another gateway process moved the witness, a gateway that restarted) the node
        refuses with ``WITNESS_AT_SIZE`` and its witness's size when the request asks it to,
        so the gateway forwards again from there; else it asks the log for the proof.
        """
        if needed is None:
            return None
        offered = [request.consistency] if request.HasField("consistency") else []
        for given in (*offered, *request.more_consistency):
            if (given.first_size, given.second_size) == needed:
                return list(given.hashes)
        first, second = needed
        kept = self._kept_proofs.get(first, second)  # sent with a query that overtook this one
        if kept is not None:
            return list(kept)
        size = request.decision_entry.inclusion.tree_size
        if request.report_witness_size:
            at = first if second == size else second
            err = refusals.refuse("WITNESS_AT_SIZE", size=at)
            err.trailers = ((SIZE_TRAILER, str(at)),)
            raise err
        return self._log.consistency(first, second)

    def decide(
        self,
        query: pb.Query,
        order: pb.LegalOrder,
        selectors: list[Selector],
        *,
        now: datetime,
        digest: bytes = b"",
        inbound: InboundPolicy,
        private: bool = False,
    ) -> tuple[Verdict, pb.Envelope | None]:
        """The node's own inbound rules (the responding country's), with its own facts about the target.

        Returns the verdict and the node's signed decision; a refusal is signed and kept in the
        outbox before it is raised. For a ``private`` hit check (``order``: the facts the gateway
        vouched for, without selectors; ``selectors`` empty) the selectors count by type, each
        valued as its commitment, and the node knows nothing of the target from its records: a
        selector of one of its own persons is not in its filters, so it misses.
        """
        if private:
            pairs = [(pb.SelectorType.Name(s.type), s.commitment.hex()) for s in query.private_selectors]
            subject, unreadable = inbound.targeting.unknown_subject(order.order_id), ""
            covers_categories = set(query.categories) <= set(order.categories)
        else:
            pairs = [(s.type.name, s.value) for s in selectors]
            subject, unreadable = inbound.targeting.known_subject(selectors, order.order_id)
            covers_categories = True  # check_coverage has refused otherwise
        facts = facts_from_query(
            query,
            order,
            requesting_country=self._federation.country_of_agency(query.requesting_agency),
            responding_country=self._node.country,
            normalised_selectors=pairs,
            order_covers_selectors=True,
            order_covers_categories=covers_categories,
            counters=self._quotas.before(query.investigator, query.requesting_agency, now=now),
            now=now,
        )

        def decide_on(known: KnownSubject) -> Decision:
            return inbound.engine.decide(dataclasses.replace(facts, subject=known))

        decision = decide_on(subject)
        self._quotas.count(query.investigator, query.requesting_agency, now=now)
        try:
            verdict = inbound.targeting.judge(
                decision,
                kind=pb.QueryKind.Name(query.kind),
                query_id=query.query_id,
                order_id=order.order_id,
                subject=subject,
                unreadable=unreadable,
                redecide=decide_on,
            )
        except NodeRefusal as refusal:
            if self._decisions is not None:
                # In clear, the rules the requester is told of; the real ones are sealed.
                signed = self._decisions.sign(
                    query,
                    digest,
                    refusal.decision,
                    sealed=refusal.sealed.commitment,
                    rule_codes=[v.code for v in refusal.violations],
                )
                self._decisions.refused(signed)
                refusal.node_decision = signed
            raise
        if self._decisions is None:
            return verdict, None
        # A hit check answered as a no-hit is an allowance in clear too; its sealed part says why.
        return verdict, self._decisions.sign(
            query, digest, verdict.decision, sealed=verdict.sealed.commitment, rule_codes=[], allowed=True
        )
