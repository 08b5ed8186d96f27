"""The gateway's request pipeline, top to bottom.

    authenticate → verify query → replay → check shape → agreement → check selectors
    → check order → decide → log → forward → log disclosure → answer

Every refusal is a check of :mod:`comity.core.refusals`: a stable check code and the agreement
rule it enforces, sent in the status details and logged. Malformed or unauthenticated input
stops at its first failing check; a well-formed query goes on to policy whatever its
selectors and order got wrong, so the answer and the decision entry name every failing check
and rule at once. A query is decided by the bundle of the agreement covering its pair of
countries (:mod:`comity.policy.agreements`); a pair that none covers is refused
(``NO_AGREEMENT``) before policy, like any other refusal. The decision is appended to the
transparency log before anything is forwarded, denials included, and a disclosure is logged
before records are returned. If the log cannot be written, the answer is UNAVAILABLE and
nothing is forwarded (fail closed); an allowed query that cannot be completed ends in a
``failed`` entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from comity.audit import events
from comity.audit.errors import AuditUnavailable, EntryWithdrawn
from comity.audit.shared_state import FactsGuard, SharedFacts, micros
from comity.audit.store import PendingEntry
from comity.core import errors, refusals
from comity.core.digests import RecordsDigest
from comity.core.dsse import PAYLOAD_DECISION, payload_digest, sign_envelope
from comity.core.errors import ComityError, FailedPrecondition, PermissionDenied
from comity.core.federation import Federation
from comity.core.federation_watch import FederationWatch
from comity.core.keys import SigningKey
from comity.core.orders import OrderVerifier, VerifiedOrder
from comity.core.queries import MAX_QUERY_ID_LENGTH, VerifiedQuery, verify_signed_query
from comity.core.replay import ReplayStore
from comity.core.selectors import InvalidSelector, normalise
from comity.core.telemetry import record_decision, span
from comity.core.tokens import TokenVerifier, VerifiedToken, bearer_token
from comity.gateway.emergency import EmergencyTracker
from comity.gateway.failures import FailureRecorder
from comity.gateway.ledger import Ledger, Logged
from comity.gateway.node_decisions import NodeDecisionLog, SignedNodeDecision
from comity.gateway.order_checks import OrderOutcome, check_order
from comity.gateway.private import (
    check_order_reference,
    open_private,
    order_facts,
    stale_filters,
    vouched_elements,
)
from comity.gateway.quota_state import QuotaCache
from comity.gateway.refusal_limits import RefusalLimiter, RefusalLimits
from comity.gateway.reuse import Claim, ReuseStore
from comity.gateway.routing import NodeRouter, NodeUnavailable
from comity.gateway.streamed import AnswerReader, StreamedAnswer, check_statement
from comity.gateway.witness_client import WitnessAt
from comity.policy.agreements import Applicable, ByAgreement
from comity.policy.engine import Decision, PolicyEngine
from comity.policy.facts import QueryFacts
from comity.policy.wire import Counters, EmergencyStatus, facts_from_query
from comity.v1 import comity_pb2 as pb

__all__ = ["Decided", "Limits", "Pipeline", "Verified"]

_log = logging.getLogger("comity.gateway")

_R = TypeVar("_R")

_INVALID = grpc.StatusCode.INVALID_ARGUMENT
refusals.register(
    refusals.Check(
        # Named in the refusal so a client can tell, without reading words, that sending the
        # query again (as a new query) through another replica is safe: nothing was decided.
        "LOG_UNAVAILABLE",
        "AUDIT_FIELDS",
        grpc.StatusCode.UNAVAILABLE,
        "the gateway cannot write its audit log, so the query was not decided and nothing was forwarded; "
        "submit it again later, as a new query",
        "Prüm Decision 2008/615 art. 30 (every query logged)",
    ),
    refusals.Check(
        "TARGET_NODE_MISSING",
        "AUDIT_FIELDS",
        _INVALID,
        "target_node is empty; name the node to query, by its id in the federation file",
        "Prüm Decision 2008/615 art. 30 (the requesting and holding bodies)",
    ),
    refusals.Check(
        "TARGET_NODE_UNKNOWN",
        "AUDIT_FIELDS",
        grpc.StatusCode.NOT_FOUND,
        "the federation lists no node {node!r}; see the federation file for node ids",
        "Prüm Decision 2008/615 art. 30 (the requesting and holding bodies)",
    ),
    refusals.Check(
        "QUERY_KIND",
        "TWO_STEP",
        _INVALID,
        "kind must be HIT_CHECK, FETCH or PRIVATE_HIT_CHECK",
        "Prüm Decision 2008/615 (hit / no hit first, records in a second step)",
    ),
    refusals.Check(
        "SELECTORS_MISSING",
        "PARTICULARITY",
        _INVALID,
        "selectors is empty; give at least one exact selector",
        "18 U.S.C. §2523(b)(4)(D)(ii)",
    ),
    refusals.Check(
        "SELECTOR_COUNT",
        "PARTICULARITY",
        _INVALID,
        "{given} selectors given, the gateway accepts at most {limit}; name the specific person, "
        "account, address or device",
        "18 U.S.C. §2523(b)(4)(D)(ii)",
    ),
    refusals.Check(
        "CATEGORIES_INVALID",
        "DATA_CATEGORY_TIERS",
        _INVALID,
        "categories must list one or more of SUBSCRIBER, TRAFFIC and CONTENT, and nothing else",
        "18 U.S.C. §2523(b)(4)(D)(vi)",
    ),
    refusals.Check(
        "JUSTIFICATION_LENGTH",
        "JUSTIFICATION",
        _INVALID,
        "the justification is longer than {limit} characters; state the articulable facts briefly",
        "18 U.S.C. §2523(b)(4)(D)(iv)",
    ),
)

_BY_STATUS: dict[grpc.StatusCode, type[ComityError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
}

# How often a query is re-sent when the node's witness needs a proof from another checkpoint.
_WITNESS_ATTEMPTS = 3


@dataclass(frozen=True)
class Limits:
    """The gateway's explicit limits."""

    max_selectors: int = 16
    max_selector_length: int = 256
    max_justification_length: int = 8_000
    freshness: timedelta = timedelta(minutes=5)
    #: The most records the gateway keeps of one streamed answer (it holds the whole answer until
    #: it is checked and logged); a node that streams more is refused (``NODE_ANSWER_LIMIT``).
    max_stream_records: int = 10_000


@dataclass(frozen=True)
class Verified:
    """A query whose token, signature and freshness checked out, with its order (None when it
    carries none) and its selectors as policy sees them. Only an allowed query is forwarded."""

    token: VerifiedToken
    query: VerifiedQuery
    order: VerifiedOrder | None
    selectors: list[tuple[str, str]]
    responding_country: str
    applicable: Applicable[PolicyEngine]
    """The agreement covering the query's pair of countries, and its bundle's engine."""
    # The query's log entries so far, in log order: its receipt holds every one of them.
    entries: list[Logged] = field(default_factory=list, compare=False)


@dataclass(frozen=True)
class Decided:
    """A policy decision and the facts it was made on."""

    decision: Decision
    facts: QueryFacts
    #: The UTC day whose quota counts the facts hold (reserved in this process until logged).
    day: str = ""


def _sealed(decision: Decision) -> list[str] | None:
    return decision.internal_reasons if decision.internal_reasons != decision.codes else None


def _shared(facts: QueryFacts) -> SharedFacts:
    return SharedFacts(
        facts.investigator_queries_today,
        facts.agency_queries_today,
        facts.emergency_overdue_orders,
        facts.emergency_order_rejected,
    )


def _selector_type(value: int) -> str:
    try:
        return pb.SelectorType.Name(value)
    except ValueError:
        return f"SELECTOR_TYPE_{value}"


def _refusal(
    failures: list[ComityError], decision: Decision, *, query_id: str, receipt: pb.Receipt
) -> ComityError:
    """One error naming every failing check and rule: the first check's status and words first.

    A policy rule already named by a more specific check before it (``ORDER_EXPIRED`` names
    INDEPENDENT_AUTHORISATION) is not repeated to the requester; the log keeps both.
    """
    named = [v for err in failures for v in err.violations]
    rules = {v.code for v in named}
    violations = named + [v for v in decision.violations if v.code not in rules]
    hint = "fix every listed rule and submit a new query"
    if not failures:
        err: ComityError = PermissionDenied("refused under the agreement", violations=violations, hint=hint)
    else:
        first = failures[0]
        more = len(violations) - len(first.violations)
        message = first.message + (f" (and {more} more: see the listed rules)" if more > 0 else "")
        err = _BY_STATUS.get(first.code, PermissionDenied)(message, violations=violations, hint=hint)
    err.bundle_digest = decision.bundle_digest
    err.query_id = query_id
    err.receipt = receipt
    return err


@dataclass(frozen=True)
class _Trusted:
    """What the pipeline checks against from one federation version, replaced whole."""

    federation: Federation
    tokens: TokenVerifier
    orders: OrderVerifier
    policies: ByAgreement[PolicyEngine]


class Pipeline:
    """One gateway's checks and routing; the gRPC service calls :meth:`submit`."""

    def __init__(
        self,
        *,
        federation: Federation,
        tokens: TokenVerifier,
        orders: OrderVerifier,
        replay: ReplayStore,
        policies: ByAgreement[PolicyEngine],
        ledger: Ledger,
        router: NodeRouter,
        decision_key: SigningKey,
        quotas: QuotaCache,
        emergencies: EmergencyTracker,
        reuse: ReuseStore,
        limits: Limits = Limits(),
        refusal_limits: RefusalLimits | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        node_decisions: NodeDecisionLog | None = None,
        watch: FederationWatch | None = None,
    ) -> None:
        self._trusted = _Trusted(federation, tokens, orders, policies)
        # The version a request in progress checks against: set for the whole of admit, so one
        # request is checked under one version even when a new one is trusted meanwhile.
        self._pinned: contextvars.ContextVar[_Trusted | None] = contextvars.ContextVar(
            f"comity-pipeline-{id(self)}", default=None
        )
        self._replay = replay
        self._ledger = ledger
        self._router = router
        self._key = decision_key
        self._quotas = quotas
        self._emergencies = emergencies
        self._reuse = reuse
        self._limits = limits
        self._clock = clock
        self._failures = FailureRecorder(ledger)
        self._limiter = RefusalLimiter(refusal_limits or RefusalLimits())
        self._node_decisions = node_decisions or NodeDecisionLog(ledger, federation.node_keys())
        self._watch = watch

    def use_federation(
        self,
        federation: Federation,
        tokens: TokenVerifier,
        orders: OrderVerifier,
        policies: ByAgreement[PolicyEngine] | None = None,
    ) -> None:
        """Decide from now on under a newly trusted federation file (called on the event loop,
        so no request sees half of the change); ``policies``: its agreements' engines, built
        beforehand (None: the agreements are unchanged)."""
        kept = self._trusted.policies if policies is None else policies
        self._trusted = _Trusted(federation, tokens, orders, kept)

    @property
    def policies(self) -> ByAgreement[PolicyEngine]:
        """The agreements' engines in use."""
        return self._trusted.policies

    @property
    def _in_use(self) -> _Trusted:
        """The version this request is checked under (the one in use when its admission began)."""
        return self._pinned.get() or self._trusted

    def require_federation(self) -> None:
        """Refuse (fail closed) while the trusted federation file has expired."""
        if self._watch is not None:
            self._watch.require_current()

    # ------------------------------------------------------------------ steps

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> VerifiedToken:
        """The investigator's bearer token, verified against the federation's issuers."""
        return self._in_use.tokens.verify(bearer_token(metadata), now=self._clock())

    def verify_query(self, request: pb.SubmitRequest, token: VerifiedToken) -> VerifiedQuery:
        """Signature over the exact bytes, by the token's investigator, fresh."""
        if not request.HasField("signed_query"):
            raise refusals.refuse("QUERY_MISSING")
        return verify_signed_query(
            request.signed_query,
            token=token,
            federation=self._in_use.federation,
            now=self._clock(),
            freshness=self._limits.freshness,
        )

    def check_shape(self, query: pb.Query) -> str:
        """What stops a query before policy: no or unknown node, no kind, inputs over hard limits.

        Returns the responding country (the target node's).
        """
        if not query.target_node:
            raise refusals.refuse("TARGET_NODE_MISSING")
        if not self._router.knows(query.target_node):
            raise refusals.refuse("TARGET_NODE_UNKNOWN", node=query.target_node)
        if query.kind not in (pb.HIT_CHECK, pb.FETCH, pb.PRIVATE_HIT_CHECK):
            raise refusals.refuse("QUERY_KIND")
        if len(query.selectors) > self._limits.max_selectors:
            raise refusals.refuse(
                "SELECTOR_COUNT", given=len(query.selectors), limit=self._limits.max_selectors
            )
        for i, s in enumerate(query.selectors):
            if len(s.value) > self._limits.max_selector_length:
                limit = self._limits.max_selector_length
                raise InvalidSelector(
                    f"value is {len(s.value)} characters long, the limit is {limit}",
                    position=i,
                    selector_type=_selector_type(s.type),
                    check="SELECTOR_LENGTH",
                )
        if (
            len(query.justification.facts) + len(query.justification.link_to_offence)
            > self._limits.max_justification_length
        ):
            raise refusals.refuse("JUSTIFICATION_LENGTH", limit=self._limits.max_justification_length)
        return self._in_use.federation.node(query.target_node).country

    def agreement(self, token: VerifiedToken, responding: str) -> Applicable[PolicyEngine]:
        """The agreement covering (the investigator's country, the target node's) now, and its engine.

        Raises ``NO_AGREEMENT`` when none is in force for the pair.
        """
        return self._in_use.policies.select(token.country, responding, self._clock())

    def check_selectors(
        self, query: pb.Query, region: str
    ) -> tuple[list[tuple[str, str]], list[pb.Selector], list[ComityError]]:
        """Every selector and category checked, each failure collected.

        Returns the (type, value) pairs policy sees (normalised where valid, as given where not,
        so the policy's own particularity rule sees a wildcard too), the valid selectors, and
        the failures.
        """
        failures: list[ComityError] = []
        pairs: list[tuple[str, str]] = []
        valid: list[pb.Selector] = []
        if not query.selectors:
            failures.append(refusals.refuse("SELECTORS_MISSING"))
        for i, s in enumerate(query.selectors):
            try:
                value = normalise(s.type, s.value, region=region, position=i)
                pairs.append((pb.SelectorType.Name(s.type), value))
                valid.append(s)
            except InvalidSelector as err:
                failures.append(err)
                pairs.append((_selector_type(s.type), s.value))
        known = set(pb.DataCategory.values()) - {pb.DATA_CATEGORY_UNSPECIFIED}
        if not query.categories or any(c not in known for c in query.categories):
            failures.append(refusals.refuse("CATEGORIES_INVALID"))
        return pairs, valid, failures

    def check_order(self, query: pb.Query, region: str, valid: list[pb.Selector]) -> OrderOutcome:
        """The legal order: registered authority, in date, covering every selector and category."""

        def canonical(selector: pb.Selector) -> str:
            return normalise(selector.type, selector.value, region=region)

        return check_order(
            query,
            verifier=self._in_use.orders,
            federation=self._in_use.federation,
            selectors=valid,
            normalise=canonical,
            now=self._clock(),
        )

    def decide(
        self,
        v: Verified,
        *,
        covers_selectors: bool = True,
        covers_categories: bool = True,
        justification_reused: bool | None = None,
    ) -> Decided:
        """The agreement's policy over the verified facts (and the coverage the order checks found)."""
        q = v.query.query
        now = self._clock()
        day, counters = self._quotas.reserve(q.investigator, q.requesting_agency, now=now)
        order = v.order.order if v.order is not None else None
        emergency = (
            self._emergencies.status(q.requesting_agency, v.order, now=now)
            if v.order is not None
            else EmergencyStatus()
        )
        facts = facts_from_query(
            q,
            order,
            requesting_country=v.token.country,
            responding_country=v.responding_country,
            normalised_selectors=v.selectors,
            order_covers_selectors=covers_selectors,
            order_covers_categories=covers_categories,
            counters=counters,
            now=now,
            emergency=emergency,
            justification_reused=justification_reused,
        )
        return Decided(v.applicable.policy.decide(facts), facts, day)

    async def log_decision(
        self, v: Verified, decided: Decided, *, failures: bool, checks: list[tuple[str, str]]
    ) -> tuple[Logged, Decided]:
        """Append the decision, allow or deny, before anything else happens.

        The quota counts and emergency facts are checked in the entry's own transaction: if
        the database holds others (another replica, or a concurrent query, decided first), the
        decision is made again on those and that one is logged. Returns the entry and the
        decision it holds. ``failures``: refusals found before policy (the query is denied).
        """
        at = self._clock()
        q = v.query.query
        final = [decided]
        token = v.token
        # Counted, never withdrawn: the decision entry names every failing check and rule.
        refusal = (
            self._limiter.counted(token.subject, token.agency, now=at, enforce=False) if failures else None
        )

        def entry(d: Decided) -> PendingEntry:
            return self._ledger.decision_entry(
                query=q,
                query_digest=v.query.digest,
                order=v.order.order if v.order is not None else pb.LegalOrder(),
                selectors=v.selectors,
                allowed=d.decision.allowed and not failures,
                # The entry travels in the requester's receipt: the rules as the requester was
                # told, and the real ones, where a generic code stands for them, behind a commitment.
                rule_codes=d.decision.codes,
                sealed_rule_codes=_sealed(d.decision),
                bundle_digest=d.decision.bundle_digest,
                agreement=v.applicable.agreement_id,
                at=at,
                facts=d.facts,
                checks=checks,
                authority=v.order.authority.id if v.order is not None else "",
                order_digest=v.order.digest if v.order is not None else b"",
                refusal=refusal,
            )

        def redecide(shared: SharedFacts) -> PendingEntry:
            # On the log's writer thread, inside the batch's transaction.
            facts = replace(
                decided.facts,
                investigator_queries_today=shared.investigator_today,
                agency_queries_today=shared.agency_today,
                emergency_overdue_orders=shared.overdue_orders,
                emergency_order_rejected=shared.order_rejected,
            )
            final[0] = Decided(v.applicable.policy.decide(facts), facts, decided.day)
            return entry(final[0])

        guard = FactsGuard(
            expected=_shared(decided.facts),
            order_digest=v.order.digest if v.order is not None else b"",
            agency=q.requesting_agency,
            now=micros(decided.facts.now),
            redecide=redecide,
        )
        try:
            logged = await self._ledger.record_decision(
                entry(decided),
                query_digest=v.query.digest,
                bundle_digest=decided.decision.bundle_digest,
                guard=guard,
            )
        except BaseException:
            self._quotas.settle(q.investigator, q.requesting_agency, decided.day, None)
            raise
        used = final[0].facts
        self._quotas.settle(
            q.investigator,
            q.requesting_agency,
            decided.day,
            Counters(used.investigator_queries_today, used.agency_queries_today),
        )
        return replace(logged, bundle_digest=final[0].decision.bundle_digest), final[0]

    def gateway_decision(self, v: Verified, bundle_digest: str) -> pb.Envelope:
        """The gateway's signed word to the node: this query, this investigator and order, allowed."""
        decided = Timestamp()
        decided.FromDatetime(self._clock())
        message = pb.GatewayDecision(
            query_id=v.query.query.query_id,
            query_digest=v.query.digest,
            investigator=v.token.subject,
            order_id=v.order.order_id if v.order is not None else "",
            decision="ALLOW",
            bundle_digest=bundle_digest,
            decided_at=decided,
            checked_blinded_elements=vouched_elements(v.query.query),
        )
        facts = order_facts(v.query.query, v.order.order if v.order is not None else None)
        if facts is not None:
            message.order_facts.CopyFrom(facts)
        return sign_envelope(PAYLOAD_DECISION, message.SerializeToString(), self._key)

    # ------------------------------------------------------------------ the whole pipeline

    async def admit(
        self, request: pb.SubmitRequest, metadata: Iterable[tuple[str, str | bytes]] | None
    ) -> tuple[Verified, Logged]:
        """Every check up to and including the logged decision; raise on refusal.

        Malformed or unauthenticated input stops at its first failing check (a ``refused``
        entry). A query that is signed, decodes, names a known node and kind, stays inside the
        hard limits and whose order (if any) is signed and decodes goes on to policy whatever
        else failed, so the ``decision`` entry and the answer name every failing check and rule.
        Every check is made under the federation version in use when this call began.
        """
        pinned = self._pinned.set(self._trusted)
        try:
            return await self._admit(request, metadata)
        finally:
            self._pinned.reset(pinned)

    async def _admit(
        self, request: pb.SubmitRequest, metadata: Iterable[tuple[str, str | bytes]] | None
    ) -> tuple[Verified, Logged]:
        # Unauthenticated callers are not logged: anyone could fill the log. From here on the
        # caller is a registered investigator, and every refusal is logged.
        # An expired federation file vouches for no one: nothing is checked against it.
        self.require_federation()
        with span("gateway.authenticate"):
            token = self.authenticate(metadata)
        await self._log_throttled()
        # Over its limit of refusals, a requester is refused before anything else is checked,
        # and its requests are counted into the window's one aggregate entry.
        self._limiter.admit(
            token.subject, token.agency, payload_digest(request.signed_query), now=self._clock()
        )
        try:
            with span("gateway.verify_query"):
                query = self.verify_query(request, token)
            with span("gateway.replay", query_id=query.query_id):
                await self._replay.record_async(query.query.query_id, query.issued_at, now=self._clock())
            with span("gateway.check_shape", query_id=query.query_id):
                country = self.check_shape(query.query)
                if query.query.kind == pb.PRIVATE_HIT_CHECK:
                    # From here on the gateway checks the opened query; the node gets the signed one.
                    query = open_private(query, request.private_openings, region=country)
                applicable = self.agreement(token, country)
                selectors, valid, failures = self.check_selectors(query.query, country)
            with span("gateway.verify_order", query_id=query.query_id):
                outcome = self.check_order(query.query, country, valid)
                if query.query.kind == pb.PRIVATE_HIT_CHECK:
                    check_order_reference(query, outcome)
        except ComityError as err:
            self._limiter.refused(token.subject, token.agency, now=self._clock())
            err.receipt = await self._log_refusal(request, token, err)
            raise
        failures += outcome.failures
        v = Verified(
            token=token,
            query=query,
            order=outcome.order,
            selectors=selectors,
            responding_country=country,
            applicable=applicable,
        )
        with span("gateway.justification_reuse", query_id=query.query_id):
            claim = await self._claim_justification(v, failures)
        with span("gateway.policy", query_id=query.query_id):
            decided = self.decide(
                v,
                covers_selectors=outcome.covers_selectors,
                covers_categories=outcome.covers_categories,
                justification_reused=None if claim is None else claim.reused,
            )
        checks = [(x.check, x.code) for err in failures for x in err.violations]
        try:
            with span("gateway.audit_append", query_id=query.query_id):
                logged, decided = await self.log_decision(v, decided, failures=bool(failures), checks=checks)
        except AuditUnavailable as err:
            if claim is not None:
                await self._release_justification(claim)
            raise _log_down(err, disclosing=False) from err
        except BaseException:
            if claim is not None:
                await self._release_justification(claim)
            raise
        decision = decided.decision
        allowed = decision.allowed and not failures
        if not allowed and claim is not None:
            await self._release_justification(claim)
        # Public codes only: a count of the hidden targeting rule could reveal a target's nationality.
        record_decision(
            "allow" if allowed else "deny",
            [x.code for err in failures for x in err.violations] + decision.codes,
        )
        v.entries.append(logged)
        if not allowed:
            if failures:
                self._limiter.refused(token.subject, token.agency, now=self._clock())
            receipt = await self._ledger.receipt(query.query.query_id, query.digest, [logged])
            raise _refusal(failures, decision, query_id=query.query.query_id, receipt=receipt)
        if v.order is not None:
            # The first use of an emergency order starts its validation deadline, logged
            # before anything is forwarded; if it cannot be logged, nothing is.
            try:
                used = await self._emergencies.note_use(
                    v.order,
                    query_id=query.query.query_id,
                    investigator=token.subject,
                    agency=query.query.requesting_agency,
                    at=self._clock(),
                )
            except BaseException:
                await self._fail(v, query.query.target_node, "EMERGENCY_NOT_LOGGED")
                raise
            if used is not None:
                v.entries.append(used)
        return v, logged

    async def _claim_justification(self, v: Verified, failures: list[ComityError]) -> Claim | None:
        """The reuse check of the justification's facts; None (and a failure) when it cannot be made."""
        q = v.query.query
        try:
            return await self._reuse.claim_async(
                agency=q.requesting_agency,
                case_reference=q.case_reference,
                facts=q.justification.facts,
                standard=v.applicable.policy.bundle.justification,
                now=self._clock(),
            )
        except ComityError as err:
            _log.error("justification reuse check failed: %s", err.message)
            failures.append(err)
            return None

    async def _release_justification(self, claim: Claim) -> None:
        """A refused query did not use its facts: another case may still state them."""
        try:
            await self._reuse.release_async(claim)
        except ComityError as err:  # the refusal stands; the stray signature only refuses more
            _log.error("could not withdraw a justification signature: %s", err.message)

    async def _log_refusal(
        self, request: pb.SubmitRequest, token: VerifiedToken, err: ComityError
    ) -> pb.Receipt | None:
        """Log a refusal before policy; returns its receipt (None if the log could not be written).

        Raises the rate limit's refusal instead when the log finds the requester at a limit.
        """
        envelope = request.signed_query
        try:
            query = pb.Query.FromString(envelope.payload)
        except Exception:  # an unparsable payload is logged by its digest alone
            query = pb.Query()
        query_id = query.query_id[:MAX_QUERY_ID_LENGTH]
        # The country asked reads the refusal too; a name the federation does not list is not kept.
        known_nodes = {n.id for n in self._in_use.federation.nodes()}
        target_node = query.target_node if query.target_node in known_nodes else ""
        digest = payload_digest(envelope)
        checks = [(v.check, v.code) for v in err.violations]
        if not checks:
            _log.warning("a refusal without a check code: %s", err.message)
        at = self._clock()
        try:
            logged = await self._ledger.record_refusal(
                query_id=query_id,
                query_digest=digest,
                investigator=token.subject,
                agency=token.agency,
                reason=err.code.name,
                at=at,
                checks=checks,
                refusal=self._limiter.counted(token.subject, token.agency, now=at),
                target_node=target_node,
            )
            return await self._ledger.receipt(query_id, digest, [logged])
        except EntryWithdrawn as over:
            # The requester is at a limit in the shared counts (reached through another replica).
            raise self._limiter.over(token.subject, token.agency, digest, over.message, now=at) from None
        except ComityError as log_error:
            # The request is refused either way; the operator must learn the log is failing.
            _log.error("could not log a refusal: %s", log_error.message)
            return None

    async def forward_request(
        self, v: Verified, logged: Logged, *, attempt: int = 0
    ) -> tuple[pb.ExecuteRequest, int]:
        """The ExecuteRequest for the node: signed query, signed decision, its log proof and checkpoint.

        On every attempt but the last, a node whose witness needs another consistency proof
        says its size (``WITNESS_AT_SIZE``) and the query is forwarded again from there; on the
        last, the node fetches the proof from the log itself, so a witness that keeps moving
        (other queries, other gateway processes) never fails the query.
        """
        node = v.query.query.target_node
        if self._ledger.witnessed_size(node) is None:
            self._ledger.set_witnessed_size(node, await self._router.witness_state(node))
        more: list[pb.ConsistencyProof] = []
        if attempt == 0:
            entry, checkpoint, consistency, size = await self._ledger.forward_proofs(node, logged)
            first = consistency.first_size if consistency is not None else None
            more = self._ledger.proofs_from_recent(size, besides=first)
        else:
            # Again, from where the node said its witness is, and from where it may be by now.
            try:
                entry, checkpoint, proofs, size = await self._ledger.forward_proofs_fresh(node, logged)
                consistency, more = (proofs[0], proofs[1:]) if proofs else (None, [])
            except AuditUnavailable as err:
                # The database is away: the proof from the reported size, from this process's
                # own recent part of the tree when it holds it.
                _log.warning("proofs for a query forwarded again read from memory: %s", err.message)
                try:
                    entry, checkpoint, consistency, size = await self._ledger.forward_proofs(node, logged)
                except AuditUnavailable as again:
                    why = f" ({again.why})" if again.why else ""
                    raise errors.Unavailable(
                        f"the node needed a newer proof from the gateway's audit log, which cannot be read"
                        f"{why}: the node did not answer and nothing was released to you",
                        hint="submit the query again later; the gateway's operator is alerted in its log",
                    ) from again
        request = pb.ExecuteRequest(
            signed_query=v.query.envelope,
            gateway_decision=self.gateway_decision(v, logged.bundle_digest),
            decision_entry=entry,
            checkpoint=pb.Checkpoint(signed_note=checkpoint),
            report_witness_size=attempt < _WITNESS_ATTEMPTS - 1,
            more_consistency=more,
        )
        if consistency is not None:
            request.consistency.CopyFrom(consistency)
        return request, size

    async def submit(
        self, request: pb.SubmitRequest, metadata: Iterable[tuple[str, str | bytes]] | None
    ) -> pb.QueryResult:
        """The whole pipeline for a unary query."""
        v, logged = await self.admit(request, metadata)
        node = v.query.query.target_node
        async with self._completion(v) as completion:
            for attempt in range(_WITNESS_ATTEMPTS):
                try:
                    execute, size = await self.forward_request(v, logged, attempt=attempt)
                    result = await self._router.execute(node, execute)
                    break
                except ComityError as err:
                    await self._forward_failed(
                        err, node=node, attempt=attempt, completion=completion, logged=logged
                    )
            with span("gateway.audit_disclosure", query_id=v.query.query_id):
                disclosure = await completion.disclose(StreamedAnswer.unary(result), size)
        receipt = await self._ledger.receipt(
            v.query.query.query_id, v.query.digest, [*v.entries, *disclosure]
        )
        receipt.node_statement.CopyFrom(result.receipt.node_statement)
        receipt.node_decision.CopyFrom(result.node_decision)
        result.receipt.CopyFrom(receipt)
        return result

    async def private_filters(
        self, request: pb.GetPrivateFiltersRequest, metadata: Iterable[tuple[str, str | bytes]] | None
    ) -> pb.PrivateFilters:
        """A node's signed private hit check filters, for an authenticated investigator.

        Relayed unchanged: the requester checks the node's signature, so the gateway cannot forge
        a filter; fetching one is not a query and is not logged.
        """
        self.authenticate(metadata)
        if not self._router.knows(request.node):
            raise refusals.refuse("TARGET_NODE_UNKNOWN", node=request.node)
        return await self._router.private_filters(request.node, request)

    async def submit_stream(
        self, request: pb.SubmitRequest, metadata: Iterable[tuple[str, str | bytes]] | None
    ) -> AsyncIterator[pb.ResultChunk]:
        """The pipeline for a streamed query: the summary first, then the record batches.

        The node's whole answer is read and kept (at most the query's ``max_records``, or
        :attr:`Limits.max_stream_records`), checked against the node's signed statement (each
        batch's digest, the count, the records digest) and its disclosure logged before anything
        is sent: a failure before that ends the stream with its refusal and a ``failed`` entry,
        and no record has left the gateway.
        """
        v, logged = await self.admit(request, metadata)
        node = v.query.query.target_node
        async with self._completion(v) as completion:
            answer, size = await self._read_stream(v, logged, completion)
            summary = answer.summary
            if summary is None:
                ended = NodeUnavailable(f"node {node!r} ended its answer without a signed statement")
                await completion.fail("NO_SUMMARY", ended)
                raise ended
            with span("gateway.audit_disclosure", query_id=v.query.query_id):
                disclosure = await completion.disclose(answer, size)
            receipt = await self._ledger.receipt(
                v.query.query.query_id, v.query.digest, [*v.entries, *disclosure]
            )
        receipt.node_statement.CopyFrom(summary.receipt.node_statement)
        receipt.node_decision.CopyFrom(summary.node_decision)
        summary.receipt.CopyFrom(receipt)
        yield pb.ResultChunk(summary=summary)
        for batch in answer.batches:
            yield pb.ResultChunk(records=batch)

    async def _read_stream(
        self, v: Verified, logged: Logged, completion: _Completion
    ) -> tuple[StreamedAnswer, int]:
        """The node's whole streamed answer (sent again like a unary query while its witness is out
        of step: nothing of an attempt was released); with the checkpoint size it was proved against."""
        node = v.query.query.target_node
        limit = min(
            v.query.query.max_records or self._limits.max_stream_records, self._limits.max_stream_records
        )
        for attempt in range(_WITNESS_ATTEMPTS):
            reader = AnswerReader(node=node, limit=limit)
            try:
                execute, size = await self.forward_request(v, logged, attempt=attempt)
                async with contextlib.aclosing(self._router.execute_stream(node, execute)) as chunks:
                    async for chunk in chunks:
                        await completion.checked(functools.partial(reader.add, chunk))
                return reader.answer, size
            except ComityError as err:
                await self._forward_failed(
                    err, node=node, attempt=attempt, completion=completion, logged=logged
                )
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _forward_failed(
        self, err: ComityError, *, node: str, attempt: int, completion: _Completion, logged: Logged
    ) -> None:
        """After a forward failed: return to send it again while the node's witness is out of step
        (and attempts are left), else log how the query ended and raise ``err``."""
        if isinstance(err, WitnessAt):
            # The node's witness is at another size than this process knew: from there.
            self._ledger.set_witnessed_size(node, err.size)
        elif isinstance(err, FailedPrecondition) and not stale_filters(err):
            # The node's witness is at another checkpoint than we thought (a concurrent query
            # moved it, or it restarted): ask it, and prove consistency from there.
            self._ledger.set_witnessed_size(node, None)
        else:  # the node's own answer (stale filters among them), not a witness out of step
            await completion.node_ended(err, logged)
            raise err
        if attempt == _WITNESS_ATTEMPTS - 1:
            await completion.fail("WITNESS", err)
            raise err

    @contextlib.asynccontextmanager
    async def _completion(self, v: Verified) -> AsyncIterator[_Completion]:
        """Around everything after an allowed decision: it ends in a disclosure or a failure entry.

        A failure named inside (``completion.fail``) is logged with its reason; anything else
        that ends the query early (the log failing before the disclosure, an unexpected error,
        the caller cancelling) is logged as one too.
        """
        completion = _Completion(self, v)
        try:
            yield completion
        except BaseException as exc:
            if not completion.ended:
                reason = _failure_reason(exc, disclosing=completion.disclosing)
                # Shielded: a cancelled caller must not cancel the entry that says so.
                await asyncio.shield(completion.fail(reason, exc if isinstance(exc, ComityError) else None))
            raise

    async def _fail(self, v: Verified, node: str, reason: str) -> Logged | None:
        decision = next((e.entry for e in v.entries if b'"kind":"decision"' in e.entry), b"")
        logged = await self._failures.record(
            v.query.query, v.query.digest, node=node, reason=reason, at=self._clock(), decision=decision
        )
        if logged is not None and b'"quota_released":true' in logged.entry:
            q = v.query.query
            self._quotas.release(q.investigator, q.requesting_agency, json.loads(decision)["at"][:10])
        return logged

    async def housekeeping(self, *, final: bool = False) -> None:
        """What runs on the gateway's timer: append the failure entries the log refused before,
        and the aggregate entries of rate-limit windows that ended (``final``: also the current
        window's, when the gateway stops)."""
        await self._failures.retry()
        await self._log_throttled(final=final)

    async def _log_throttled(self, *, final: bool = False) -> None:
        now = self._clock()
        for window in self._limiter.closed(now=now, final=final):
            entry = events.throttled_event(
                at=now,
                window_start=window.window_start,
                window_end=window.window_end,
                count=window.count,
                requests_root=window.requests_root,
                by_requester=window.by_requester,
            )
            try:
                await self._ledger.record(entry)
            except ComityError as exc:
                _log.error("the rate limit's aggregate entry cannot be appended yet: %s", exc.message)
                return
            self._limiter.logged(window)

    async def _node_refusal(self, v: Verified, err: ComityError) -> Logged | None:
        """Log the node's signed refusal carried by ``err``; None when there is none to log."""
        node = v.query.query.target_node
        try:
            return await self._node_decisions.record_refusal(err, node=node, query_digest=v.query.digest)
        except ComityError as bad:
            # Not logged as the node's word (forged, mismatched, or the log failed): the query
            # failed, and a genuine signed refusal still reaches the log from the node's outbox.
            _log.warning("query %s: node %s's refusal not logged: %s", v.query.query_id, node, bad.message)
            return None

    def _check_answer(
        self, v: Verified, result: pb.QueryResult, answer: StreamedAnswer
    ) -> SignedNodeDecision:
        """The node's signed allowance and statement on ``result`` (the answer's summary), checked
        under the federation file in use (``NODE_ANSWER_UNSIGNED``, ``NODE_ANSWER_KEY``), and what
        it sent checked against that statement (``NODE_ANSWER_MISMATCH``), before anything of the
        answer is logged."""
        node = v.query.query.target_node
        signed, statement = self._node_decisions.verify_answer(result, node=node, query_digest=v.query.digest)
        check_statement(answer, statement, node=node)
        return signed

    async def _disclose(
        self,
        v: Verified,
        result: pb.QueryResult,
        digest: RecordsDigest,
        size: int,
        signed: SignedNodeDecision,
    ) -> list[Logged]:
        """Log the node's signed allowance and the disclosure (one batch); returns what was logged."""
        decided, disclosed = await asyncio.gather(
            self._node_decisions.record(signed, closes=False),
            self._record_disclosure(v, result, digest, size),
        )
        return [decided, disclosed]

    async def _record_disclosure(
        self, v: Verified, result: pb.QueryResult, digest: RecordsDigest, size: int
    ) -> Logged:
        return await self._ledger.record_disclosure(
            query_id=v.query.query.query_id,
            query_digest=v.query.digest,
            node=result.node_id,
            hit=result.hit,
            record_count=digest.count,
            records_digest=digest.digest(),
            node_statement=result.receipt.node_statement,
            at=self._clock(),
            cosignature=result.witness_cosignature,
            cosigned_size=size,
        )


class _Completion:
    """One allowed query's way to its end: a disclosure, or exactly one failure entry."""

    def __init__(self, pipeline: Pipeline, v: Verified) -> None:
        self._pipeline = pipeline
        self._v = v
        self.ended = False
        self.disclosing = False

    async def fail(self, reason: str, err: ComityError | None = None) -> None:
        """Log the failure (now, or once the log is writable again); only the first one counts.

        When the entry is in the log now, ``err`` (what the requester is told) carries its receipt.
        """
        if self.ended:
            return
        self.ended = True
        logged = await self._pipeline._fail(self._v, self._v.query.query.target_node, reason)
        if logged is None or err is None:
            return
        q = self._v.query
        try:
            err.receipt = await self._pipeline._ledger.receipt(
                q.query.query_id, q.digest, [*self._v.entries, logged]
            )
        except ComityError as exc:
            _log.warning("query %s: no receipt for its failure (%s)", q.query.query_id, exc.message)

    async def node_ended(self, err: ComityError, logged: Logged) -> None:
        """The node answered with an error: log its signed refusal (the requester gets a receipt
        for it), or else a failure."""
        if self.ended:
            return
        refusal = await self._pipeline._node_refusal(self._v, err)
        if refusal is None:
            await self.fail(err.code.name, err)
            return
        self.ended = True
        q = self._v.query
        err.receipt = await self._pipeline._ledger.receipt(
            q.query.query_id, q.digest, [*self._v.entries, refusal]
        )

    async def checked(self, check: Callable[[], _R]) -> _R:
        """Run one of the gateway's checks of the node's answer; a refusal ends the query in a
        failure entry whose reason is the check's code."""
        try:
            return check()
        except ComityError as err:
            await self.fail(err.check_codes[0] if err.check_codes else err.code.name, err)
            raise

    async def disclose(self, answer: StreamedAnswer, size: int) -> list[Logged]:
        """Check the node's answer (:meth:`Pipeline._check_answer`), then log what it released and
        its signed allowance; the query has then ended. A refused answer is logged as failed,
        under the check's code, and nothing of it is disclosed."""
        result = answer.summary
        if result is None:
            raise AssertionError("unreachable: a stream without a summary ends before its disclosure")
        signed = await self.checked(functools.partial(self._pipeline._check_answer, self._v, result, answer))
        self.disclosing = True
        try:
            logged = await self._pipeline._disclose(self._v, result, answer.digest, size, signed)
        except AuditUnavailable as err:
            raise _log_down(err, disclosing=True) from err
        self.ended = True
        return logged


def _log_down(err: AuditUnavailable, *, disclosing: bool) -> errors.Unavailable:
    """What the requester is told when the log cannot be written: what happened to the query and
    what to do, in words (the storage's details stay in the server's log, the operator's hint too)."""
    why = f" ({err.why})" if err.why else ""
    if disclosing:
        message = (
            f"the node answered, but the gateway cannot write its audit log{why}, and records are never "
            "returned before their disclosure is logged: nothing was released to you"
        )
    else:
        message = (
            f"the gateway cannot write its audit log{why}, and no query is decided without its log "
            "entry: nothing was forwarded or released"
        )
    hint = "submit the query again later; the gateway's operator is alerted in its log"
    if disclosing:
        return errors.Unavailable(message, hint=hint)
    return errors.Unavailable(message, hint=hint, violations=[refusals.violation("LOG_UNAVAILABLE")])


def _failure_reason(exc: BaseException, *, disclosing: bool) -> str:
    if disclosing:
        return "DISCLOSURE_NOT_LOGGED"
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"
    if isinstance(exc, ComityError):
        return exc.code.name
    return "INTERNAL"
