"""The node's gRPC service: admit (with the node's own-person check) → look up → minimise → sign → answer.

Lookups run in a worker thread (the stores are synchronous) and stream in batches, so a
large answer never sits in memory whole on the node. The answer's last part is the node's
signed statement: what it released (with each streamed batch's digest), bound to the query's
digest.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from comity.audit.witness import Witness
from comity.core import refusals
from comity.core.digests import RecordsDigest
from comity.core.dsse import PAYLOAD_NODE_STATEMENT, sign_envelope
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.core.rpc import guard_stream, guard_unary
from comity.core.telemetry import span
from comity.core.tls import check_peer_certificate
from comity.nodes.admission import Admission, Admitted
from comity.nodes.convert import time_range_from_proto, to_proto
from comity.nodes.decisions import NodeDecisions
from comity.nodes.hitref import HitReferences
from comity.nodes.lookup import RecordSource, TimeRange
from comity.nodes.membership import Membership
from comity.nodes.private_admission import PrivateChecks
from comity.nodes.schema import DataCategory, Schema
from comity.nodes.subjects import OwnParties, SubjectReader
from comity.nodes.targeting import Answer
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["DataNodeService"]

_log = logging.getLogger("comity.node")

T = TypeVar("T")

refusals.register(
    refusals.Check(
        "PRIVATE_UNSUPPORTED",
        "TWO_STEP",
        grpc.StatusCode.INVALID_ARGUMENT,
        "this node does not serve private hit checks (it serves an agency's own tables); "
        "send a HIT_CHECK instead",
        "Prüm Decision 2008/615 (hit / no hit first, records in a second step)",
    )
)


def _is_private(request: pb.ExecuteRequest) -> bool:
    # Routing only: the private path verifies the signed query like the other one does.
    try:
        return pb.Query.FromString(request.signed_query.payload).kind == pb.PRIVATE_HIT_CHECK
    except DecodeError:
        return False


@dataclass(frozen=True)
class _Scope:
    """One lookup pass: categories and the time range that applies to them."""

    categories: frozenset[DataCategory]
    time_range: TimeRange | None


def _scopes(admitted: Admitted) -> list[_Scope]:
    # A subscriber record says who holds an account and is dated when the account was opened;
    # the query's time range bounds activity, so it applies to traffic and content only.
    subscriber = admitted.categories & {DataCategory.SUBSCRIBER}
    activity = admitted.categories - subscriber
    scopes = [_Scope(frozenset(subscriber), None)] if subscriber else []
    if activity:
        scopes.append(_Scope(frozenset(activity), admitted.time_range))
    return scopes


class _Run:
    """What one request's lookup learnt on the way (whether the cap cut it short)."""

    truncated = False


class DataNodeService(pb_grpc.DataNodeServicer):
    """Serves the gateway's ExecuteRequests over one record source."""

    def __init__(
        self,
        *,
        node_id: str,
        federation: Federation,
        admission: Admission,
        witness: Witness,
        source: RecordSource,
        schema: Schema,
        subjects: SubjectReader,
        country: str,
        response_key: SigningKey,
        hit_references: HitReferences,
        max_records: int,
        stream_batch: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        workers: int = 16,
        decisions: NodeDecisions | None = None,
        private: PrivateChecks | None = None,
        membership: Membership | None = None,
    ) -> None:
        self._private = private
        self._membership = membership
        self._node_id = node_id
        self._gateway_pins = federation.gateway.client_pins
        self._admission = admission
        self._witness = witness
        self._source = source
        self._schema = schema
        self._subjects = subjects
        self._country = country
        self._key = response_key
        self._hits = hit_references
        self._max_records = max_records
        self._batch = stream_batch
        self._clock = clock
        self._decisions = decisions
        # The node's own workers, apart from the process's default executor: an admission waiting
        # for the witness (which may ask the gateway's log for a proof) never starves anything else.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="comity-node")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        # Like asyncio.to_thread, carry the context over (it holds the current trace span).
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(context.run, fn, *args)
        )

    def use_gateway_pins(self, pins: Sequence[str]) -> None:
        """Accept only these gateway client certificates from now on (a newly trusted federation file's)."""
        self._gateway_pins = tuple(pins)

    def close(self) -> None:
        """Stop the worker threads (after the server has stopped taking calls)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _check_peer(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        # TLS already required the gateway's client certificate; checking the pin here as well
        # keeps the node closed if its TLS settings are ever loosened.
        check_peer_certificate(context, self._gateway_pins, what="the caller")
        if self._membership is not None:
            self._membership.require_member()

    async def _admit(
        self, request: pb.ExecuteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Admitted:
        self._check_peer(context)
        return await self._run(self._admission.admit, request)

    def _limit(self, admitted: Admitted) -> int:
        asked = admitted.query.max_records or self._max_records
        caps = [asked, self._max_records] + (
            [admitted.order.max_records] if admitted.order.max_records else []
        )
        return min(caps)

    def _released(self, admitted: Admitted, run: _Run) -> Iterator[list[pb.Record]]:
        """Batches of minimised wire records; runs in a worker thread."""
        remaining = self._limit(admitted)
        # Incidental persons of this country in the records (the other party of a message)
        # are withheld field by field; the target itself was checked at admission.
        own = OwnParties(self._subjects, self._schema, country=self._country, targets=admitted.selectors)
        for scope in _scopes(admitted):
            with self._source.lookup(
                admitted.selectors, categories=scope.categories, time_range=scope.time_range, limit=remaining
            ) as stream:
                for batch in stream.batches(self._batch):
                    with span("node.minimise", query_id=admitted.query.query_id):
                        released = admitted.inbound.minimiser.apply(batch, scope, own)
                    if released:
                        yield [to_proto(r) for r in released]
                run.truncated = run.truncated or stream.truncated
                remaining -= stream.count
            if remaining <= 0:
                run.truncated = True
                return

    def _hit_check(self, admitted: Admitted) -> pb.QueryResult:
        with span("node.hit_check", query_id=admitted.query.query_id):
            return self._hit_check_unspanned(admitted)

    def _hit_check_unspanned(self, admitted: Admitted) -> pb.QueryResult:
        # The store is asked either way, so a hit check on one of this country's own persons
        # (answered as a no-hit) does the same work as any other.
        found = any(
            self._source.hit_check(
                admitted.selectors, categories=scope.categories, time_range=scope.time_range
            )
            for scope in _scopes(admitted)
        )
        hit = found and admitted.verdict.answer is Answer.ANSWERED
        reference = (
            self._hits.issue(admitted.order.order_id, admitted.selector_pairs, now=self._clock())
            if hit
            else ""
        )
        return self._summary(admitted, RecordsDigest(), hit=hit, reference=reference, truncated=False)

    def _summary(
        self,
        admitted: Admitted,
        digest: RecordsDigest,
        *,
        hit: bool,
        reference: str,
        truncated: bool,
        batch_digests: Sequence[bytes] = (),
    ) -> pb.QueryResult:
        answered = Timestamp()
        answered.FromDatetime(self._clock())
        statement = pb.NodeStatement(
            node_id=self._node_id,
            query_id=admitted.query.query_id,
            query_digest=admitted.query_digest,
            hit=hit,
            record_count=digest.count,
            records_digest=digest.digest(),
            answered_at=answered,
            use_restrictions=admitted.inbound.use_restrictions,
            hit_reference=reference,
            sealed_reason=admitted.verdict.sealed,
            batch_digests=batch_digests,
        )
        with span("node.sign", query_id=admitted.query.query_id):
            envelope = sign_envelope(PAYLOAD_NODE_STATEMENT, statement.SerializeToString(), self._key)
        receipt = pb.Receipt(
            query_id=admitted.query.query_id, query_digest=admitted.query_digest, node_statement=envelope
        )
        if self._decisions is not None and admitted.node_decision is not None:
            # Durable before the signed answer leaves: the gateway can always log it later.
            self._decisions.answered(admitted.node_decision, envelope)
        return pb.QueryResult(
            node_decision=admitted.node_decision,
            query_id=admitted.query.query_id,
            node_id=self._node_id,
            hit=hit,
            hit_reference=reference,
            use_restrictions=admitted.inbound.use_restrictions,
            truncated=truncated,
            receipt=receipt,
            witness_cosignature=admitted.cosignature,
        )

    @guard_unary
    async def Execute(
        self, request: pb.ExecuteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.QueryResult:
        if _is_private(request):
            return await self._private_check(request, context)
        self._check_peer(context)
        # Admission, look-up and the signed statement in one worker-thread call: a unary answer
        # is held whole anyway, so passing its batches through the event loop only adds hops.
        return await self._run(self._admit_and_answer, request)

    def _admit_and_answer(self, request: pb.ExecuteRequest) -> pb.QueryResult:
        """A unary query's whole answer; runs in a worker thread."""
        admitted = self._admission.admit(request)
        if admitted.query.kind == pb.HIT_CHECK:
            return self._hit_check(admitted)
        run = _Run()
        records = [record for batch in self._released(admitted, run) for record in batch]
        digest = RecordsDigest()
        for record in records:
            digest.update(record)
        result = self._summary(admitted, digest, hit=bool(records), reference="", truncated=run.truncated)
        result.records.extend(records)
        return result

    @guard_stream
    async def ExecuteStream(
        self, request: pb.ExecuteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.ResultChunk]:
        if _is_private(request):
            yield pb.ResultChunk(summary=await self._private_check(request, context))
            return
        admitted = await self._admit(request, context)
        if admitted.query.kind == pb.HIT_CHECK:
            yield pb.ResultChunk(summary=await self._run(self._hit_check, admitted))
            return
        digest = RecordsDigest()
        batch_digests: list[bytes] = []
        run = _Run()
        async for batch in self._batches(admitted, run):
            # Signed in the statement, so a client checks each batch before it uses any of its records.
            batch_digests.append(digest.update_batch(batch))
            yield pb.ResultChunk(records=pb.RecordBatch(records=batch))
        summary = await self._run(
            functools.partial(
                self._summary,
                hit=digest.count > 0,
                reference="",
                truncated=run.truncated,
                batch_digests=batch_digests,
            ),
            admitted,
            digest,
        )
        yield pb.ResultChunk(summary=summary)

    async def _private_check(
        self, request: pb.ExecuteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.QueryResult:
        self._check_peer(context)
        if self._private is None:
            raise refusals.refuse("PRIVATE_UNSUPPORTED")
        return await self._run(self._private.execute, request)

    @guard_unary
    async def GetPrivateFilters(
        self, request: pb.GetPrivateFiltersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PrivateFilters:
        self._check_peer(context)
        if self._private is None:
            raise refusals.refuse("PRIVATE_UNSUPPORTED")
        filters = self._private.filters
        time_range = time_range_from_proto(request.time_range) if request.HasField("time_range") else None
        return await self._run(
            functools.partial(
                filters.filters,
                epoch=request.epoch,
                from_segment=request.from_segment,
                time_range=time_range,
            )
        )

    @guard_unary
    async def GetWitnessState(
        self, request: pb.GetWitnessStateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.WitnessState:
        self._check_peer(context)
        latest = await self._run(self._witness.latest)
        return pb.WitnessState(tree_size=latest.size, root_hash=latest.root_hash)

    @guard_unary
    async def ListOutbox(
        self, request: pb.ListOutboxRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListOutboxResponse:
        self._check_peer(context)
        if self._decisions is None:
            return pb.ListOutboxResponse()
        items = await self._run(
            functools.partial(self._decisions.outbox.pending, after=request.after, limit=request.limit)
        )
        return pb.ListOutboxResponse(items=items)

    @guard_unary
    async def AcknowledgeOutbox(
        self, request: pb.AcknowledgeOutboxRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.AcknowledgeOutboxResponse:
        self._check_peer(context)
        if self._decisions is None:
            return pb.AcknowledgeOutboxResponse()
        count = await self._run(self._decisions.outbox.acknowledge, list(request.sequences))
        return pb.AcknowledgeOutboxResponse(acknowledged=count)

    async def _batches(self, admitted: Admitted, run: _Run) -> AsyncIterator[list[pb.Record]]:
        # One batch at a time from the worker thread: memory stays bounded by the batch size.
        it = self._released(admitted, run)
        sentinel: list[pb.Record] = []
        while True:
            batch = await self._run(next, it, sentinel)
            if batch is sentinel:
                return
            yield batch
