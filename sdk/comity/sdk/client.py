"""The investigator's client: build, sign, submit, verify.

``AsyncClient`` and ``Client`` do the same work over ``grpc.aio`` and blocking gRPC. Both
sign the query with the investigator's registered key, send the bearer token, enforce a
deadline, map gRPC statuses to :mod:`comity.core.errors` classes, and verify the node's
signed statement before returning any record.

A client may be given several gateway addresses (replicas serving one log): it keeps a
channel to each, sends each request to the one that answered last, and sends a submission
again, as a new query, through the next one only after a failure that shows nothing was decided
there or that nothing was forwarded (see :mod:`comity.sdk.failover`). Every attempt, with its
query id, is on the result (``Result.attempts``) or on the error raised (``err.attempts``).
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import grpc

from comity.audit.events import ValidatedEvent
from comity.audit.note import Ed25519Verifier
from comity.audit.receipt import VerifiedReceipt
from comity.audit.receipt_trust import FederationTrust
from comity.audit.statement import open_statement
from comity.core.digests import RecordsDigest
from comity.core.dsse import payload_digest
from comity.core.errors import Attempt, ComityError, DeadlineExceeded, InvalidArgument, Unavailable
from comity.core.federation import Federation
from comity.core.grpcopts import DEFAULT_MAX_MESSAGE_BYTES, channel_options
from comity.core.keys import SigningKey, VerifyingKey
from comity.core.rpc import error_from_status
from comity.core.rpc_telemetry import client_interceptors
from comity.sdk.failover import Failover, Plan, Replicas, from_comity
from comity.sdk.private import (
    PreparedCheck,
    PrivateResult,
    check_filters,
    conclude,
    false_positive_bound,
    false_positive_rate,
    prepare,
    scoped_range,
)
from comity.sdk.query import QuerySpec, build_query, sign_query
from comity.sdk.receipt_refresh import GatewayCheckpoints, await_quorum
from comity.sdk.receipts import verify_validation_receipt
from comity.sdk.result import (
    RecordView,
    ResponseTampered,
    Result,
    ResultVerifier,
    StreamCheck,
    record_view,
    to_result,
)
from comity.sdk.streaming import AsyncRecordStream, RecordStream
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["AsyncClient", "Client", "Identity"]


@dataclass(frozen=True)
class Identity:
    """Who is asking: the investigator's id and agency, signing key and bearer token.

    ``token`` may be a callable, so a long-running program can refresh it.
    """

    investigator: str
    agency: str
    signing_key: SigningKey
    token: str | Callable[[], str]

    def bearer(self) -> tuple[tuple[str, str], ...]:
        """The gRPC metadata carrying the token."""
        token = self.token() if callable(self.token) else self.token
        return (("authorization", f"Bearer {token}"),)


class _Base(abc.ABC):
    """``target`` is the gateway's address, or several replicas' addresses in the order to try them."""

    def __init__(
        self,
        target: str | Sequence[str],
        *,
        identity: Identity,
        node_keys: Mapping[str, VerifyingKey],
        log_key: Ed25519Verifier,
        root_certificates: bytes | None,
        timeout: float = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        federation: Federation | None = None,
        failover: Failover | None = None,
    ) -> None:
        addresses = (target,) if isinstance(target, str) else tuple(target)
        self.failover = failover if failover is not None else Failover()
        self.identity = identity
        self.timeout = timeout
        # With the federation file, receipts are checked under its key histories and witness
        # quorum; with bare keys, under those keys, every checkpoint "quorum pending".
        trust = FederationTrust(federation) if federation is not None else None
        self._verifier = ResultVerifier(node_keys, log_key, trust=trust)
        self._clock = clock
        self._federation = federation
        self._options = channel_options(max_message_bytes)
        self._root_certificates = root_certificates
        self._credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
        self._replicas: Replicas[pb_grpc.GatewayStub] = Replicas(addresses, self._connect)

    @property
    def target(self) -> str:
        """The gateway address the next request goes to first (the one that answered last)."""
        return self._replicas.preferred

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every gateway address this client may use, in the order given."""
        return self._replicas.addresses

    @property
    def _stub(self) -> pb_grpc.GatewayStub:
        return self._replicas.stub(self._replicas.preferred)

    def _plan(self) -> Plan:
        return Plan(self._replicas.order(), self.failover, self.timeout)

    def _attempt_failed(
        self,
        plan: Plan,
        address: str,
        exc: grpc.RpcError,
        err: ComityError,
        query_id: str = "",
        *,
        streamed: StreamCheck | None = None,
    ) -> float:
        """Record a failed attempt; the wait before the next one, or raise the error the caller gets.

        ``streamed``: the check of a stream whose verified summary arrived (it is not sent again)."""
        delay = plan.failed(query_id, address, exc, err)
        if from_comity(exc.trailing_metadata()):
            self._replicas.answered(address)  # the replica is up: it answered with a status
        if delay is None:
            raise plan.final(err)
        if streamed is not None:
            broke = Unavailable(
                f"the result stream from gateway {address} broke after {streamed.records} record(s): those "
                "were verified against the node's statement, the rest of the answer did not arrive",
                hint="submit the query again for the whole answer",
            )
            broke.attempts = err.attempts
            raise broke
        return delay

    def _submit_failed(
        self,
        plan: Plan,
        address: str,
        exc: grpc.RpcError,
        request: pb.SubmitRequest,
        streamed: StreamCheck | None = None,
    ) -> float:
        err = self._refused(exc, request, address)
        return self._attempt_failed(plan, address, exc, err, _query_id(request), streamed=streamed)

    def _read_failed(self, plan: Plan, address: str, exc: grpc.RpcError) -> float:
        return self._attempt_failed(plan, address, exc, _error(exc, address))

    def _answered(self, plan: Plan, address: str, query_id: str) -> tuple[Attempt, ...]:
        self._replicas.answered(address)
        return plan.answered(query_id, address)

    def _await_quorum(self, result: Result, timeout: float) -> Result:
        if self._federation is None:
            raise InvalidArgument(
                "waiting for the witness quorum needs the federation file (its witness policy)",
                hint="create the client with federation=Federation.load(...)",
            )
        roots = self._root_certificates
        source = GatewayCheckpoints(self._replicas.order(), root_certificates=roots, timeout=self.timeout)
        try:
            receipt, verified = await_quorum(result.receipt, self._verifier.trust, source, timeout=timeout)
        finally:
            source.close()
        return dataclasses.replace(result, receipt=receipt, verified=verified)

    @abc.abstractmethod
    def _connect(self, address: str) -> tuple[Any, pb_grpc.GatewayStub]:
        """A channel to ``address`` and the Gateway stub on it."""

    def _request(self, spec: QuerySpec, plan: Plan | None = None) -> pb.SubmitRequest:
        if plan is not None and not plan.first:
            spec = _resubmitted(spec)
        query = build_query(
            spec, investigator=self.identity.investigator, agency=self.identity.agency, now=self._clock()
        )
        return pb.SubmitRequest(signed_query=sign_query(query, self.identity.signing_key))

    def _finish(self, plan: Plan, address: str, request: pb.SubmitRequest, summary: pb.QueryResult) -> Result:
        digest = RecordsDigest()
        records = list(summary.records)
        for record in records:
            digest.update(record)
        attempts = self._answered(plan, address, _query_id(request))
        verified = self._check(request, summary, digest)
        return dataclasses.replace(to_result(summary, records, verified), attempts=attempts)

    def _stream_opened(
        self, plan: Plan, address: str, request: pb.SubmitRequest, chunk: pb.ResultChunk
    ) -> tuple[StreamCheck, Result]:
        """A stream's first part: the summary, verified before any record is taken; with it, the
        answer without its records."""
        if not chunk.HasField("summary") or chunk.summary.records:
            raise ResponseTampered(
                "the result stream did not start with the node's statement alone; refusing its records"
            )
        statement, verified = self._verifier.verify_summary(
            chunk.summary, query_digest=payload_digest(request.signed_query), query_id=_query_id(request)
        )
        # Recorded as answered once the stream ends whole (a stream broken after this is not
        # sent again, and its attempt is recorded as failed).
        attempts = (*plan.attempts, Attempt(_query_id(request), address, "answered"))
        result = dataclasses.replace(to_result(chunk.summary, [], verified), attempts=attempts)
        return self._verifier.stream_check(statement), result

    def _check(
        self, request: pb.SubmitRequest, summary: pb.QueryResult, digest: RecordsDigest
    ) -> VerifiedReceipt:
        return self._verifier.verify(
            summary, digest, query_digest=payload_digest(request.signed_query), query_id=_query_id(request)
        )

    def _validated(self, response: pb.ValidateEmergencyResponse, envelope: pb.Envelope) -> ValidatedEvent:
        return verify_validation_receipt(
            response.receipt,
            self._verifier.trust,
            validation_digest=hashlib.sha256(envelope.payload).digest(),
        )

    def _validation_failed(
        self, plan: Plan, address: str, exc: grpc.RpcError, envelope: pb.Envelope
    ) -> float:
        err = _error(exc, address)
        self._verifier.verify_refusal(err, query_digest=hashlib.sha256(envelope.payload).digest())
        return self._attempt_failed(plan, address, exc, err)

    def _refused(self, exc: grpc.RpcError, request: pb.SubmitRequest, address: str) -> ComityError:
        err = _error(exc, address)
        self._verifier.verify_refusal(
            err, query_digest=payload_digest(request.signed_query), query_id=_query_id(request)
        )
        return err

    def _private_prepare(
        self, spec: QuerySpec, filters: pb.PrivateFilters
    ) -> tuple[PreparedCheck, pb.SubmitRequest]:
        node = spec.target_node
        if self._federation is None:
            raise InvalidArgument(
                "a private hit check needs the federation file (the node's country and keys)",
                hint="construct the client with federation=",
            )
        now = self._clock()
        segments = check_filters(filters, node=node, keys=self._verifier.trust.response_keys(node), now=now)
        prepared = prepare(
            spec,
            segments,
            region=self._federation.node(node).country,
            investigator=self.identity.investigator,
            agency=self.identity.agency,
            now=now,
        )
        request = pb.SubmitRequest(
            signed_query=sign_query(prepared.query, self.identity.signing_key),
            private_openings=prepared.openings,
        )
        return prepared, request

    def _private_finish(
        self,
        prepared: PreparedCheck,
        request: pb.SubmitRequest,
        summary: pb.QueryResult,
        attempts: tuple[Attempt, ...] = (),
    ) -> PrivateResult:
        verified = self._check(request, summary, RecordsDigest())
        keys = self._verifier.trust.response_keys(summary.node_id)
        statement = open_statement(summary.receipt.node_statement, summary.node_id, keys)
        return PrivateResult(
            query_id=summary.query_id,
            node_id=summary.node_id,
            hits=conclude(prepared, summary, statement),
            epoch=prepared.query.filter_epoch,
            false_positive_rate=false_positive_rate(prepared.segments),
            false_positive_bound=false_positive_bound(prepared),
            receipt=summary.receipt,
            verified=verified,
            attempts=attempts,
        )


def _resubmitted(spec: QuerySpec) -> QuerySpec:
    # A query id is accepted once: a query sent again is a new query, with an id of its own.
    return dataclasses.replace(spec, query_id="") if spec.query_id else spec


def _filters_request(node: str, time_range: tuple[datetime, datetime] | None) -> pb.GetPrivateFiltersRequest:
    request = pb.GetPrivateFiltersRequest(node=node)
    if time_range is not None:
        request.time_range.start.FromDatetime(time_range[0])
        request.time_range.end.FromDatetime(time_range[1])
    return request


def _checked_batch(check: StreamCheck, chunk: pb.ResultChunk) -> list[RecordView]:
    """A stream's next part after its summary: a record batch, checked whole before any record is used."""
    if not chunk.HasField("records"):
        raise ResponseTampered("the result stream sent a second summary; refusing the rest of it")
    check.batch(chunk.records.records)
    return [record_view(r) for r in chunk.records.records]


def _query_id(request: pb.SubmitRequest) -> str:
    # The SDK's own bytes, signed by this client a moment ago.
    return pb.Query.FromString(request.signed_query.payload).query_id


def _error(exc: grpc.RpcError, target: str) -> ComityError:
    call: grpc.Call = exc  # type: ignore[assignment]
    code, details = call.code(), call.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE and not details.strip():
        return Unavailable(f"gateway {target} is unavailable")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(details or "the deadline passed before the gateway answered")
    return error_from_status(code, details, call.trailing_metadata())


class AsyncClient(_Base):
    """Asynchronous client; use as ``async with AsyncClient(...) as client``."""

    def _connect(self, address: str) -> tuple[Any, pb_grpc.GatewayStub]:
        channel = grpc.aio.secure_channel(
            address, self._credentials, options=self._options, interceptors=client_interceptors()
        )
        return channel, pb_grpc.GatewayStub(channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every channel."""
        for channel in self._replicas.channels():
            await channel.close()  # type: ignore[attr-defined]

    async def query(self, spec: QuerySpec) -> Result:
        """Submit ``spec`` and return the verified result; raises a ComityError subclass on refusal.

        ``timeout`` bounds the whole call, resubmissions through other replicas included."""
        plan = self._plan()
        while True:
            address, request = plan.address, self._request(spec, plan)
            try:
                summary = await self._replicas.stub(address).Submit(
                    request, timeout=plan.timeout(), metadata=self.identity.bearer()
                )
            except grpc.aio.AioRpcError as exc:
                await asyncio.sleep(self._submit_failed(plan, address, exc, request))
                continue
            return self._finish(plan, address, request, summary)

    async def wait_for_quorum(self, result: Result, *, within: float = 60.0) -> Result:
        """The result with its receipt upgraded to a witness-quorum checkpoint.

        A fresh receipt is usually "quorum pending" for a moment (the witnesses cosign on a short
        timer). This polls the gateway's AuditLog service (public calls, through any replica) and
        verifies what it gets as any receipt (a consistency proof from the receipt's checkpoint,
        fresh inclusion proofs, the quorum); raises ``QuorumPending`` when none covers it
        ``within`` seconds.
        """
        return await asyncio.to_thread(self._await_quorum, result, within)

    async def private_filters(
        self, node: str, *, time_range: tuple[datetime, datetime] | None = None
    ) -> pb.PrivateFilters:
        """``node``'s signed private hit check filters (not yet verified: see :meth:`private_hit_check`).

        With ``time_range``, only the dated segments of the whole UTC days inside it.
        """
        request, plan = _filters_request(node, time_range), self._plan()
        while True:
            address = plan.address
            try:
                filters: pb.PrivateFilters = await self._replicas.stub(address).GetPrivateFilters(
                    request, timeout=plan.timeout(), metadata=self.identity.bearer()
                )
            except grpc.aio.AioRpcError as exc:
                await asyncio.sleep(self._read_failed(plan, address, exc))
                continue
            self._answered(plan, address, "")
            return filters

    async def private_hit_check(
        self, spec: QuerySpec, *, filters: pb.PrivateFilters | None = None
    ) -> PrivateResult:
        """A private hit check of ``spec``'s selectors: the node receives only blinded elements.

        Fetches and verifies the node's filters (unless given), blinds, submits, verifies the
        node's statement, the receipt and the evaluation's proof, and tests the filters. Raises
        a ComityError subclass on refusal. Sent again like :meth:`query`, blinded afresh.
        """
        if filters is None:
            filters = await self.private_filters(spec.target_node, time_range=scoped_range(spec))
        plan = self._plan()
        while True:
            address = plan.address
            prepared, request = self._private_prepare(spec if plan.first else _resubmitted(spec), filters)
            try:
                summary = await self._replicas.stub(address).Submit(
                    request, timeout=plan.timeout(), metadata=self.identity.bearer()
                )
            except grpc.aio.AioRpcError as exc:
                await asyncio.sleep(self._submit_failed(plan, address, exc, request))
                continue
            attempts = self._answered(plan, address, _query_id(request))
            return self._private_finish(prepared, request, summary, attempts)

    async def validate_emergency(self, signed_validation: pb.Envelope) -> ValidatedEvent:
        """Submit an authority's signed review of an emergency order this agency used.

        Returns the logged validation, checked against its receipt; raises a ComityError
        subclass on refusal (the refusal's receipt checked too). The same signed review is sent
        again through the next replica after a failure like a query's: if the replica that went
        away had logged it, the next answers ``ALREADY_EXISTS`` (the order was already reviewed).
        """
        request, plan = pb.ValidateEmergencyRequest(signed_validation=signed_validation), self._plan()
        while True:
            address = plan.address
            try:
                response = await self._replicas.stub(address).ValidateEmergency(
                    request, timeout=plan.timeout(), metadata=self.identity.bearer()
                )
            except grpc.aio.AioRpcError as exc:
                await asyncio.sleep(self._validation_failed(plan, address, exc, signed_validation))
                continue
            self._answered(plan, address, "")
            return self._validated(response, signed_validation)

    def stream(self, spec: QuerySpec) -> AsyncRecordStream:
        """Stream a large result, as :class:`RecordView` like :meth:`query`; every record yielded has
        been verified against the node's signed statement.

        The gateway sends the answer's summary first, once the disclosure is logged: the node's
        statement and the receipt are verified before any record is taken, then each record
        batch against the digest the node signed for it, before any of its records is yielded (a
        batch that does not match raises ResponseTampered). At the end, the number of batches,
        the count and the records digest over all of them must match too. The query is sent again
        through another replica like :meth:`query`, but only until its summary arrived.

        The stream's ``result`` is the verified answer without its records (its receipt, use
        restrictions and attempts) from the summary on; ``complete`` is true once the iteration
        ended with every batch checked.
        """
        stream = AsyncRecordStream()
        stream.records = self._stream(spec, stream)
        return stream

    async def _stream(self, spec: QuerySpec, stream: AsyncRecordStream) -> AsyncIterator[RecordView]:
        plan = self._plan()
        while True:
            address, request = plan.address, self._request(spec, plan)
            check: StreamCheck | None = None
            call = self._replicas.stub(address).SubmitStream(
                request, timeout=plan.timeout(), metadata=self.identity.bearer()
            )
            try:
                async for chunk in call:
                    if check is None:
                        check, stream.result = self._stream_opened(plan, address, request, chunk)
                        continue
                    for view in _checked_batch(check, chunk):
                        yield view
            except grpc.aio.AioRpcError as exc:
                await asyncio.sleep(self._submit_failed(plan, address, exc, request, check))
                continue
            finally:
                call.cancel()  # nothing once the call has ended
            if check is None:
                raise Unavailable("the result stream ended without the node's statement")
            check.finish()
            self._answered(plan, address, _query_id(request))
            stream.complete = True
            return


class Client(_Base):
    """Blocking client with the same behaviour as :class:`AsyncClient`."""

    def _connect(self, address: str) -> tuple[Any, pb_grpc.GatewayStub]:
        channel = grpc.secure_channel(address, self._credentials, options=self._options)
        return channel, pb_grpc.GatewayStub(channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every channel."""
        for channel in self._replicas.channels():
            channel.close()  # type: ignore[attr-defined]

    def query(self, spec: QuerySpec) -> Result:
        """Blocking counterpart of :meth:`AsyncClient.query`."""
        plan = self._plan()
        while True:
            address, request = plan.address, self._request(spec, plan)
            try:
                summary = self._replicas.stub(address).Submit(
                    request, timeout=plan.timeout(), metadata=self.identity.bearer()
                )
            except grpc.RpcError as exc:
                time.sleep(self._submit_failed(plan, address, exc, request))
                continue
            return self._finish(plan, address, request, summary)

    def wait_for_quorum(self, result: Result, *, within: float = 60.0) -> Result:
        """The result with its receipt upgraded to a witness-quorum checkpoint (blocking).

        Polls the gateway's AuditLog service (public calls, through any replica) and verifies
        what it gets as any receipt; raises ``QuorumPending`` when no quorum covers the receipt
        ``within`` seconds.
        """
        return self._await_quorum(result, within)

    def private_filters(
        self, node: str, *, time_range: tuple[datetime, datetime] | None = None
    ) -> pb.PrivateFilters:
        """Blocking counterpart of :meth:`AsyncClient.private_filters`."""
        request, plan = _filters_request(node, time_range), self._plan()
        while True:
            address = plan.address
            try:
                filters: pb.PrivateFilters = self._replicas.stub(address).GetPrivateFilters(
                    request, timeout=plan.timeout(), metadata=self.identity.bearer()
                )
            except grpc.RpcError as exc:
                time.sleep(self._read_failed(plan, address, exc))
                continue
            self._answered(plan, address, "")
            return filters

    def private_hit_check(
        self, spec: QuerySpec, *, filters: pb.PrivateFilters | None = None
    ) -> PrivateResult:
        """Blocking counterpart of :meth:`AsyncClient.private_hit_check`."""
        if filters is None:
            filters = self.private_filters(spec.target_node, time_range=scoped_range(spec))
        plan = self._plan()
        while True:
            address = plan.address
            prepared, request = self._private_prepare(spec if plan.first else _resubmitted(spec), filters)
            try:
                summary = self._replicas.stub(address).Submit(
                    request, timeout=plan.timeout(), metadata=self.identity.bearer()
                )
            except grpc.RpcError as exc:
                time.sleep(self._submit_failed(plan, address, exc, request))
                continue
            attempts = self._answered(plan, address, _query_id(request))
            return self._private_finish(prepared, request, summary, attempts)

    def validate_emergency(self, signed_validation: pb.Envelope) -> ValidatedEvent:
        """Blocking counterpart of :meth:`AsyncClient.validate_emergency`."""
        request, plan = pb.ValidateEmergencyRequest(signed_validation=signed_validation), self._plan()
        while True:
            address = plan.address
            try:
                response = self._replicas.stub(address).ValidateEmergency(
                    request, timeout=plan.timeout(), metadata=self.identity.bearer()
                )
            except grpc.RpcError as exc:
                time.sleep(self._validation_failed(plan, address, exc, signed_validation))
                continue
            self._answered(plan, address, "")
            return self._validated(response, signed_validation)

    def stream(self, spec: QuerySpec) -> RecordStream:
        """Blocking counterpart of :meth:`AsyncClient.stream`, with the same checks: every record
        yielded has been verified against the node's signed statement; ``result`` and ``complete``
        as there."""
        stream = RecordStream()
        stream.records = self._stream(spec, stream)
        return stream

    def _stream(self, spec: QuerySpec, stream: RecordStream) -> Iterator[RecordView]:
        plan = self._plan()
        while True:
            address, request = plan.address, self._request(spec, plan)
            check: StreamCheck | None = None
            call = self._replicas.stub(address).SubmitStream(
                request, timeout=plan.timeout(), metadata=self.identity.bearer()
            )
            try:
                for chunk in call:
                    if check is None:
                        check, stream.result = self._stream_opened(plan, address, request, chunk)
                        continue
                    yield from _checked_batch(check, chunk)
            except grpc.RpcError as exc:
                time.sleep(self._submit_failed(plan, address, exc, request, check))
                continue
            finally:
                call.cancel()  # nothing once the call has ended
            if check is None:
                raise Unavailable("the result stream ended without the node's statement")
            check.finish()
            self._answered(plan, address, _query_id(request))
            stream.complete = True
            return
