"""A private hit check at the node: admit without the selectors, evaluate, sign.

The node never receives a selector or the legal order of a private check. It checks, in
order: the gateway's signed decision; the investigator's signed query (commitments, blinded
elements, order reference); that the decision is about this query and vouches for exactly these
blinded elements, this order and the order's facts without its selectors (it relies on the
gateway's check that each element is a selector the order covers, and that the facts are the
order's: it cannot check that itself); the shape of the query; that the decision is in the
transparency log (as a witness); its inbound bundle, under the agreement in force, on those
facts (the order's validity, authority, offence and attestation, the query's categories, time
range and selector count and types; it holds no record facts about a target it cannot name);
that the query tests the node's current filter epoch; and its per-order and per-agency daily
limits on tested selectors. It then evaluates the VOPRF on the blinded elements with a DLEQ
proof and signs a statement binding the evaluation to the query. It learns the agency, the
investigator, the order's facts, the categories, the time range and how many selectors were
tested, never a selector, nor whether one hit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from comity.core import refusals, voprf
from comity.core.digests import RecordsDigest
from comity.core.dsse import PAYLOAD_NODE_STATEMENT, sign_envelope
from comity.core.keys import SigningKey
from comity.core.private_check import check_private_shape, check_vouched, evaluation_digest
from comity.core.telemetry import span
from comity.nodes.admission import Admission
from comity.nodes.decisions import NodeDecisions
from comity.nodes.private_filters import PrivateFilters
from comity.nodes.private_state import Limit, PrivateLedger
from comity.v1 import comity_pb2 as pb

__all__ = ["PrivateChecks", "PrivateLimits"]

refusals.register(
    refusals.Check(
        "PRIVATE_FILTER_STALE",
        "TWO_STEP",
        grpc.StatusCode.FAILED_PRECONDITION,
        "the query tests filters of epoch {given}; this node's filters are of epoch {current}: "
        "download the current filters and blind the selectors again",
        "Prüm Decision 2008/615 (hit / no hit first, records in a second step)",
    ),
)


@dataclass(frozen=True)
class PrivateLimits:
    """How many selectors one order, and one agency, may test a UTC day (every process of the node)."""

    per_order_per_day: int = 64
    per_agency_per_day: int = 1000


class PrivateChecks:
    """Serves PRIVATE_HIT_CHECK queries for one node."""

    def __init__(
        self,
        *,
        node_id: str,
        admission: Admission,
        filters: PrivateFilters,
        response_key: SigningKey,
        decisions: NodeDecisions | None,
        ledger: PrivateLedger,
        limits: PrivateLimits = PrivateLimits(),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._node_id = node_id
        self._admission = admission
        self.filters = filters
        self._key = response_key
        self._decisions = decisions
        self._limits = limits
        self._clock = clock
        self.ledger = ledger

    def execute(self, request: pb.ExecuteRequest) -> pb.QueryResult:
        """Admit, evaluate and answer (runs in a worker thread), under one federation version."""
        with self._admission.one_version():
            return self._execute(request)

    def _execute(self, request: pb.ExecuteRequest) -> pb.QueryResult:
        a = self._admission
        with span("node.verify_decision"):
            decision = a.verify_decision(request.gateway_decision)
            a.check_decision_time(decision, now=self._clock())
        with span("node.verify_query", query_id=decision.query_id):
            query, digest = a.verify_query(request.signed_query)
            a.check_binding(decision, query, digest)
            a.check_query_time(query, now=self._clock())
            check_private_shape(query)
            check_vouched(decision, query)
        with span("node.witness", query_id=query.query_id):
            cosignature = a.witness_decision(request, digest)
        now = self._clock()
        applicable = a.agreement(query, now=now, gateway_bundle=decision.bundle_digest)
        # The inbound bundle decides on the order's facts the gateway vouched for, as for any
        # query; a refusal is signed, kept and raised here.
        with span("node.policy", query_id=query.query_id):
            verdict, signed = a.decide(
                query,
                decision.order_facts,
                [],
                now=now,
                digest=digest,
                inbound=applicable.policy,
                private=True,
            )
        epoch, key = self.filters.current()
        if query.filter_epoch != epoch:
            raise refusals.refuse("PRIVATE_FILTER_STALE", given=query.filter_epoch, current=epoch)
        # Counted and logged in one transaction, durable before the evaluation leaves.
        self.ledger.take(query, self._daily_limits(query), now=self._clock())
        with span("node.private_evaluate", query_id=query.query_id):
            evaluated, proof = voprf.blind_evaluate(key, [s.blinded_element for s in query.private_selectors])
        evaluation = pb.PrivateEvaluation(epoch=epoch, evaluated_elements=evaluated, proof=proof)
        return self._answer(query, digest, evaluation, cosignature, verdict.sealed, signed)

    def _daily_limits(self, query: pb.Query) -> list[Limit]:
        order, agency = query.order_reference.order_id, query.requesting_agency
        return [
            Limit(f"order {order}", f"order:{order}", self._limits.per_order_per_day),
            Limit(f"agency {agency}", f"agency:{agency}", self._limits.per_agency_per_day),
        ]

    def _answer(
        self,
        query: pb.Query,
        digest: bytes,
        evaluation: pb.PrivateEvaluation,
        cosignature: str,
        sealed: pb.SealedReason,
        signed: pb.Envelope | None,
    ) -> pb.QueryResult:
        answered = Timestamp()
        answered.FromDatetime(self._clock())
        statement = pb.NodeStatement(
            node_id=self._node_id,
            query_id=query.query_id,
            query_digest=digest,
            hit=False,  # the node cannot know: only the requester learns hit or no hit
            record_count=0,
            records_digest=RecordsDigest().digest(),
            answered_at=answered,
            evaluation_digest=evaluation_digest(evaluation),
            filter_epoch=evaluation.epoch,
            sealed_reason=sealed,
        )
        envelope = sign_envelope(PAYLOAD_NODE_STATEMENT, statement.SerializeToString(), self._key)
        if self._decisions is not None and signed is not None:
            # Durable before the signed answer leaves: the gateway can always log it later.
            self._decisions.answered(signed, envelope)
        result = pb.QueryResult(
            query_id=query.query_id,
            node_id=self._node_id,
            hit=False,
            receipt=pb.Receipt(query_id=query.query_id, query_digest=digest, node_statement=envelope),
            witness_cosignature=cosignature,
            private_evaluation=evaluation,
        )
        if signed is not None:
            result.node_decision.CopyFrom(signed)
        return result
