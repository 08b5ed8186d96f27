"""The gateway's request pipeline, top to bottom.

    authenticate → verify query → check shape → verify order → replay → decide → log
    → forward → log disclosure → answer

Each step is one method that raises a :mod:`comity.core.errors` class. The decision is
appended to the transparency log before anything is forwarded, denials included, and a
disclosure is logged before records are returned. If the log cannot be written, the
answer is UNAVAILABLE and nothing is forwarded (fail closed).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from comity.core.digests import RecordsDigest
from comity.core.dsse import PAYLOAD_DECISION, payload_digest, sign_envelope
from comity.core.errors import ComityError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.core.orders import OrderVerifier, VerifiedOrder, check_order_covers
from comity.core.queries import VerifiedQuery, verify_signed_query
from comity.core.replay import ReplayStore
from comity.core.selectors import normalise
from comity.core.telemetry import record_decision, span
from comity.core.tokens import TokenVerifier, VerifiedToken, bearer_token
from comity.gateway.emergency import EmergencyTracker
from comity.gateway.ledger import Ledger, Logged
from comity.gateway.routing import NodeRouter, NodeUnavailable
from comity.policy.engine import Decision, PolicyEngine
from comity.policy.quotas import QuotaCounters
from comity.policy.wire import facts_from_query
from comity.v1 import comity_pb2 as pb

__all__ = ["Limits", "Pipeline", "Verified"]

_log = logging.getLogger("comity.gateway")

# How often a query is re-sent when the node's witness needs a proof from another checkpoint.
_WITNESS_ATTEMPTS = 3


@dataclass(frozen=True)
class Limits:
    """The gateway's explicit limits."""

    max_selectors: int = 16
    max_selector_length: int = 256
    max_justification_length: int = 8_000
    freshness: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class Verified:
    """A query whose token, signature, shape, order and freshness all checked out."""

    token: VerifiedToken
    query: VerifiedQuery
    order: VerifiedOrder
    selectors: list[tuple[str, str]]
    responding_country: str


class Pipeline:
    """One gateway's checks and routing; the gRPC service calls :meth:`submit`."""

    def __init__(
        self,
        *,
        federation: Federation,
        tokens: TokenVerifier,
        orders: OrderVerifier,
        replay: ReplayStore,
        engine: PolicyEngine,
        ledger: Ledger,
        router: NodeRouter,
        decision_key: SigningKey,
        quotas: QuotaCounters,
        emergencies: EmergencyTracker,
        limits: Limits = Limits(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._federation = federation
        self._tokens = tokens
        self._orders = orders
        self._replay = replay
        self._engine = engine
        self._ledger = ledger
        self._router = router
        self._key = decision_key
        self._quotas = quotas
        self._emergencies = emergencies
        self._limits = limits
        self._clock = clock

    # ------------------------------------------------------------------ steps

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> VerifiedToken:
        """The investigator's bearer token, verified against the federation's issuers."""
        return self._tokens.verify(bearer_token(metadata), now=self._clock())

    def verify_query(self, request: pb.SubmitRequest, token: VerifiedToken) -> VerifiedQuery:
        """Signature over the exact bytes, by the token's investigator, fresh."""
        if not request.HasField("signed_query"):
            raise InvalidArgument(
                "signed_query is missing", hint="sign the Query and send it as a DSSE envelope"
            )
        return verify_signed_query(
            request.signed_query,
            token=token,
            federation=self._federation,
            now=self._clock(),
            freshness=self._limits.freshness,
        )

    def check_shape(self, query: pb.Query) -> tuple[list[tuple[str, str]], str]:
        """Selectors, categories, kind and target: present, bounded, well-formed."""
        if not query.target_node:
            raise InvalidArgument("target_node is empty", hint="name the node to query, e.g. ca-node")
        if not self._router.knows(query.target_node):
            raise NotFound(f"unknown node {query.target_node!r}", hint="see the federation file for node ids")
        if query.kind == pb.QUERY_KIND_UNSPECIFIED:
            raise InvalidArgument("kind is unspecified", hint="use HIT_CHECK or FETCH")
        if not query.selectors:
            raise InvalidArgument("selectors is empty", hint="give at least one exact selector")
        if len(query.selectors) > self._limits.max_selectors:
            raise InvalidArgument(
                f"selectors: {len(query.selectors)} given, at most {self._limits.max_selectors}"
            )
        if not query.categories or pb.DATA_CATEGORY_UNSPECIFIED in query.categories:
            raise InvalidArgument("categories must list SUBSCRIBER, TRAFFIC or CONTENT")
        if (
            len(query.justification.facts) + len(query.justification.link_to_offence)
            > self._limits.max_justification_length
        ):
            raise InvalidArgument("justification is too long")
        node = self._federation.node(query.target_node)
        pairs = [
            (pb.SelectorType.Name(s.type), normalise(s.type, s.value, region=node.country, position=i))
            for i, s in enumerate(query.selectors)
        ]
        return pairs, node.country

    def verify_order(self, query: pb.Query, region: str) -> VerifiedOrder:
        """The legal order: registered authority, in date, covering every selector and category."""
        if not query.HasField("legal_order"):
            raise PermissionDenied(
                "the query carries no legal order", hint="attach the order the authority signed"
            )
        verified = self._orders.verify(query.legal_order, now=self._clock())

        def canonical(selector: pb.Selector) -> str:
            return normalise(selector.type, selector.value, region=region)

        check_order_covers(verified.order, query.selectors, query.categories, normalise=canonical)
        return verified

    def decide(self, v: Verified) -> Decision:
        """The agreement's policy over verified facts only."""
        q = v.query.query
        now = self._clock()
        counters = self._quotas.before(q.investigator, q.requesting_agency, now=now)
        facts = facts_from_query(
            q,
            v.order.order,
            requesting_country=v.token.country,
            responding_country=v.responding_country,
            normalised_selectors=v.selectors,
            order_covers_selectors=True,
            order_covers_categories=True,
            counters=counters,
            now=now,
            emergency=self._emergencies.status(q.requesting_agency, v.order, now=now),
        )
        return self._engine.decide(facts)

    async def log_decision(self, v: Verified, decision: Decision) -> Logged:
        """Append the decision, allow or deny, before anything else happens."""
        return await self._ledger.record_decision(
            query=v.query.query,
            query_digest=v.query.digest,
            order=v.order.order,
            selectors=v.selectors,
            allowed=decision.allowed,
            rule_codes=decision.internal_reasons,
            bundle_digest=decision.bundle_digest,
            at=self._clock(),
        )

    def gateway_decision(self, v: Verified, bundle_digest: str) -> pb.Envelope:
        """The gateway's signed word to the node: this query, this investigator and order, allowed."""
        decided = Timestamp()
        decided.FromDatetime(self._clock())
        message = pb.GatewayDecision(
            query_id=v.query.query.query_id,
            query_digest=v.query.digest,
            investigator=v.token.subject,
            order_id=v.order.order.order_id,
            decision="ALLOW",
            bundle_digest=bundle_digest,
            decided_at=decided,
        )
        return sign_envelope(PAYLOAD_DECISION, message.SerializeToString(), self._key)

    # ------------------------------------------------------------------ the whole pipeline

    async def admit(
        self, request: pb.SubmitRequest, metadata: Iterable[tuple[str, str | bytes]] | None
    ) -> tuple[Verified, Logged]:
        """Every check up to and including the logged decision; raise on refusal."""
        # Unauthenticated callers are not logged: anyone could fill the log. From here on the
        # caller is a registered investigator, and every refusal is logged.
        with span("gateway.authenticate"):
            token = self.authenticate(metadata)
        try:
            with span("gateway.verify_query"):
                query = self.verify_query(request, token)
            with span("gateway.check_shape", query_id=query.query_id):
                selectors, country = self.check_shape(query.query)
            with span("gateway.verify_order", query_id=query.query_id):
                order = self.verify_order(query.query, country)
            with span("gateway.replay", query_id=query.query_id):
                await self._replay.record_async(query.query.query_id, query.issued_at, now=self._clock())
        except ComityError as err:
            err.receipt = await self._log_refusal(request, token, err)
            raise
        v = Verified(token=token, query=query, order=order, selectors=selectors, responding_country=country)
        with span("gateway.policy", query_id=query.query_id):
            decision = self.decide(v)
        # Public codes only: a count of the hidden targeting rule could reveal a target's nationality.
        record_decision("allow" if decision.allowed else "deny", decision.codes)
        with span("gateway.audit_append", query_id=query.query_id):
            logged = await self.log_decision(v, decision)
        self._quotas.count(token.subject, query.query.requesting_agency, now=self._clock())
        if decision.allowed:
            # The first use of an emergency order starts its validation deadline, logged
            # before anything is forwarded; if it cannot be logged, nothing is.
            await self._emergencies.note_use(
                order,
                query_id=query.query.query_id,
                investigator=token.subject,
                agency=query.query.requesting_agency,
                at=self._clock(),
            )
        if not decision.allowed:
            raise PermissionDenied(
                "refused under the agreement",
                violations=decision.violations,
                bundle_digest=decision.bundle_digest,
                query_id=query.query.query_id,
                receipt=await self._ledger.receipt(query.query.query_id, query.digest, [logged]),
                hint="fix every listed rule and submit a new query",
            )
        return v, logged

    async def _log_refusal(
        self, request: pb.SubmitRequest, token: VerifiedToken, err: ComityError
    ) -> pb.Receipt | None:
        """Log a refusal before policy; returns its receipt (None if the log could not be written)."""
        envelope = request.signed_query
        try:
            query_id = pb.Query.FromString(envelope.payload).query_id
        except Exception:  # an unparsable payload is logged by its digest alone
            query_id = ""
        digest = payload_digest(envelope)
        try:
            logged = await self._ledger.record_refusal(
                query_id=query_id,
                query_digest=digest,
                investigator=token.subject,
                agency=token.agency,
                reason=f"{err.code.name}:{type(err).__name__}",
                at=self._clock(),
            )
            return await self._ledger.receipt(query_id, digest, [logged])
        except ComityError as log_error:
            # The request is refused either way; the operator must learn the log is failing.
            _log.error("could not log a refusal: %s", log_error.message)
            return None

    async def forward_request(self, v: Verified, logged: Logged) -> tuple[pb.ExecuteRequest, int]:
        """The ExecuteRequest for the node: signed query, signed decision, its log proof and checkpoint."""
        node = v.query.query.target_node
        if self._ledger.witnessed_size(node) is None:
            self._ledger.set_witnessed_size(node, await self._router.witness_state(node))
        entry, checkpoint, consistency, size = await self._ledger.forward_proofs(node, logged)
        request = pb.ExecuteRequest(
            signed_query=v.query.envelope,
            gateway_decision=self.gateway_decision(v, logged.bundle_digest),
            decision_entry=entry,
            checkpoint=pb.Checkpoint(signed_note=checkpoint),
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
        for attempt in range(_WITNESS_ATTEMPTS):
            try:
                execute, size = await self.forward_request(v, logged)
                result = await self._router.execute(node, execute)
                break
            except FailedPrecondition:
                # The node's witness is at another checkpoint than we thought (a concurrent
                # query moved it, or it restarted): ask it, and prove consistency from there.
                self._ledger.set_witnessed_size(node, None)
                if attempt == _WITNESS_ATTEMPTS - 1:
                    await self._fail(v, node, "WITNESS")
                    raise
            except ComityError as err:
                await self._fail(v, node, err.code.name)
                raise
        digest = RecordsDigest()
        for record in result.records:
            digest.update(record)
        with span("gateway.audit_disclosure", query_id=v.query.query_id):
            disclosure = await self._disclose(v, result, digest, size)
        receipt = await self._ledger.receipt(v.query.query.query_id, v.query.digest, [logged, disclosure])
        receipt.node_statement.CopyFrom(result.receipt.node_statement)
        result.receipt.CopyFrom(receipt)
        return result

    async def submit_stream(
        self, request: pb.SubmitRequest, metadata: Iterable[tuple[str, str | bytes]] | None
    ) -> AsyncIterator[pb.ResultChunk]:
        """The pipeline for a streamed query: record batches pass through; the summary comes last.

        The disclosure is logged when the node's summary arrives, before the summary (and
        with it the node's statement that makes the records usable) is passed on.
        """
        v, logged = await self.admit(request, metadata)
        node = v.query.query.target_node
        digest = RecordsDigest()
        for attempt in range(_WITNESS_ATTEMPTS):
            started = False
            try:
                execute, size = await self.forward_request(v, logged)
                async for chunk in self._router.execute_stream(node, execute):
                    started = True
                    if chunk.HasField("summary"):
                        summary = chunk.summary
                        disclosure = await self._disclose(v, summary, digest, size)
                        receipt = await self._ledger.receipt(
                            v.query.query.query_id, v.query.digest, [logged, disclosure]
                        )
                        receipt.node_statement.CopyFrom(summary.receipt.node_statement)
                        summary.receipt.CopyFrom(receipt)
                        yield chunk
                        return
                    for record in chunk.records.records:
                        digest.update(record)
                    yield chunk
            except FailedPrecondition:
                self._ledger.set_witnessed_size(node, None)
                if started or attempt == _WITNESS_ATTEMPTS - 1:
                    await self._fail(v, node, "WITNESS")
                    raise
                continue
            except ComityError as err:
                await self._fail(v, node, err.code.name)
                raise
            break
        await self._fail(v, node, "NO_SUMMARY")
        raise NodeUnavailable(f"node {node!r} ended its answer without a signed statement")

    async def _fail(self, v: Verified, node: str, reason: str) -> None:
        await self._ledger.record_failure(
            v.query.query, v.query.digest, node=node, reason=reason, at=self._clock()
        )

    async def _disclose(
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
