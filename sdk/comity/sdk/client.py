"""The investigator's client: build, sign, submit, verify.

``AsyncClient`` and ``Client`` do the same work over ``grpc.aio`` and blocking gRPC. Both
sign the query with the investigator's registered key, send the bearer token, enforce a
deadline, map gRPC statuses to :mod:`comity.core.errors` classes, and verify the node's
signed statement before returning any record.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import grpc

from comity.audit.events import ValidatedEvent
from comity.audit.note import Ed25519Verifier
from comity.audit.receipt import VerifiedReceipt
from comity.audit.receipt_trust import FederationTrust
from comity.audit.statement import open_statement
from comity.core.digests import RecordsDigest
from comity.core.dsse import payload_digest
from comity.core.errors import ComityError, DeadlineExceeded, InvalidArgument, Unavailable
from comity.core.federation import Federation
from comity.core.grpcopts import DEFAULT_MAX_MESSAGE_BYTES, channel_options
from comity.core.keys import SigningKey, VerifyingKey
from comity.core.rpc import error_from_status
from comity.core.rpc_telemetry import client_interceptors
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
from comity.sdk.result import RecordView, Result, ResultVerifier, record_view, to_result
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
    def __init__(
        self,
        target: str,
        *,
        identity: Identity,
        node_keys: Mapping[str, VerifyingKey],
        log_key: Ed25519Verifier,
        root_certificates: bytes | None,
        timeout: float = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        federation: Federation | None = None,
    ) -> None:
        self.target = target
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
        self._open()

    def _await_quorum(self, result: Result, timeout: float) -> Result:
        if self._federation is None:
            raise InvalidArgument(
                "waiting for the witness quorum needs the federation file (its witness policy)",
                hint="create the client with federation=Federation.load(...)",
            )
        roots = self._root_certificates
        source = GatewayCheckpoints(self.target, root_certificates=roots, timeout=self.timeout)
        try:
            receipt, verified = await_quorum(result.receipt, self._verifier.trust, source, timeout=timeout)
        finally:
            source.close()
        return dataclasses.replace(result, receipt=receipt, verified=verified)

    @abc.abstractmethod
    def _open(self) -> None:
        """Create the channel and stub."""

    def _request(self, spec: QuerySpec) -> pb.SubmitRequest:
        query = build_query(
            spec, investigator=self.identity.investigator, agency=self.identity.agency, now=self._clock()
        )
        return pb.SubmitRequest(signed_query=sign_query(query, self.identity.signing_key))

    def _finish(self, request: pb.SubmitRequest, summary: pb.QueryResult, records: list[pb.Record]) -> Result:
        digest = RecordsDigest()
        for record in records:
            digest.update(record)
        verified = self._check(request, summary, digest)
        return to_result(summary, records, verified)

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

    def _validation_refused(self, exc: grpc.RpcError, envelope: pb.Envelope) -> ComityError:
        err = _error(exc, self.target)
        self._verifier.verify_refusal(err, query_digest=hashlib.sha256(envelope.payload).digest())
        return err

    def _refused(self, exc: grpc.RpcError, request: pb.SubmitRequest) -> ComityError:
        err = _error(exc, self.target)
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
        self, prepared: PreparedCheck, request: pb.SubmitRequest, summary: pb.QueryResult
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
        )


def _filters_request(node: str, time_range: tuple[datetime, datetime] | None) -> pb.GetPrivateFiltersRequest:
    request = pb.GetPrivateFiltersRequest(node=node)
    if time_range is not None:
        request.time_range.start.FromDatetime(time_range[0])
        request.time_range.end.FromDatetime(time_range[1])
    return request


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

    def _open(self) -> None:
        self._channel = grpc.aio.secure_channel(
            self.target, self._credentials, options=self._options, interceptors=client_interceptors()
        )
        self._stub = pb_grpc.GatewayStub(self._channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def query(self, spec: QuerySpec) -> Result:
        """Submit ``spec`` and return the verified result; raises a ComityError subclass on refusal."""
        request = self._request(spec)
        try:
            summary = await self._stub.Submit(request, timeout=self.timeout, metadata=self.identity.bearer())
        except grpc.aio.AioRpcError as exc:
            raise self._refused(exc, request) from None
        return self._finish(request, summary, list(summary.records))

    async def wait_for_quorum(self, result: Result, *, within: float = 60.0) -> Result:
        """The result with its receipt upgraded to a witness-quorum checkpoint.

        A fresh receipt is usually "quorum pending" for a moment (the witnesses cosign on a short
        timer). This polls the gateway's AuditLog service (public calls) and verifies what it
        gets as any receipt (a consistency proof from the receipt's checkpoint, fresh inclusion
        proofs, the quorum); raises ``QuorumPending`` when none covers it ``within`` seconds.
        """
        return await asyncio.to_thread(self._await_quorum, result, within)

    async def private_filters(
        self, node: str, *, time_range: tuple[datetime, datetime] | None = None
    ) -> pb.PrivateFilters:
        """``node``'s signed private hit check filters (not yet verified: see :meth:`private_hit_check`).

        With ``time_range``, only the dated segments of the whole UTC days inside it.
        """
        request = _filters_request(node, time_range)
        try:
            filters: pb.PrivateFilters = await self._stub.GetPrivateFilters(
                request, timeout=self.timeout, metadata=self.identity.bearer()
            )
        except grpc.aio.AioRpcError as exc:
            raise _error(exc, self.target) from None
        return filters

    async def private_hit_check(
        self, spec: QuerySpec, *, filters: pb.PrivateFilters | None = None
    ) -> PrivateResult:
        """A private hit check of ``spec``'s selectors: the node receives only blinded elements.

        Fetches and verifies the node's filters (unless given), blinds, submits, verifies the
        node's statement, the receipt and the evaluation's proof, and tests the filters. Raises
        a ComityError subclass on refusal.
        """
        if filters is None:
            filters = await self.private_filters(spec.target_node, time_range=scoped_range(spec))
        prepared, request = self._private_prepare(spec, filters)
        try:
            summary = await self._stub.Submit(request, timeout=self.timeout, metadata=self.identity.bearer())
        except grpc.aio.AioRpcError as exc:
            raise self._refused(exc, request) from None
        return self._private_finish(prepared, request, summary)

    async def validate_emergency(self, signed_validation: pb.Envelope) -> ValidatedEvent:
        """Submit an authority's signed review of an emergency order this agency used.

        Returns the logged validation, checked against its receipt; raises a ComityError
        subclass on refusal (the refusal's receipt checked too).
        """
        request = pb.ValidateEmergencyRequest(signed_validation=signed_validation)
        try:
            response = await self._stub.ValidateEmergency(
                request, timeout=self.timeout, metadata=self.identity.bearer()
            )
        except grpc.aio.AioRpcError as exc:
            raise self._validation_refused(exc, signed_validation) from None
        return self._validated(response, signed_validation)

    async def stream(self, spec: QuerySpec) -> AsyncIterator[RecordView]:
        """Stream a large result: yields records as they arrive, as :class:`RecordView` like :meth:`query`.

        The node's statement comes last, so the records are verified only when the stream
        ends: a tampered stream raises ResponseTampered at the end, and a caller must not act
        on the records before the iteration completes without error.
        """
        request = self._request(spec)
        digest = RecordsDigest()
        call = self._stub.SubmitStream(request, timeout=self.timeout, metadata=self.identity.bearer())
        try:
            async for chunk in call:
                if chunk.HasField("summary"):
                    self._check(request, chunk.summary, digest)
                    return
                for record in chunk.records.records:
                    digest.update(record)
                    yield record_view(record)
        except grpc.aio.AioRpcError as exc:
            raise self._refused(exc, request) from None
        raise Unavailable("the result stream ended without the node's statement")


class Client(_Base):
    """Blocking client with the same behaviour as :class:`AsyncClient`."""

    def _open(self) -> None:
        self._channel = grpc.secure_channel(self.target, self._credentials, options=self._options)
        self._stub = pb_grpc.GatewayStub(self._channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def query(self, spec: QuerySpec) -> Result:
        """Submit ``spec`` and return the verified result; raises a ComityError subclass on refusal."""
        request = self._request(spec)
        try:
            summary = self._stub.Submit(request, timeout=self.timeout, metadata=self.identity.bearer())
        except grpc.RpcError as exc:
            raise self._refused(exc, request) from None
        return self._finish(request, summary, list(summary.records))

    def wait_for_quorum(self, result: Result, *, within: float = 60.0) -> Result:
        """The result with its receipt upgraded to a witness-quorum checkpoint (blocking).

        Polls the gateway's AuditLog service (public calls) and verifies what it gets as any
        receipt; raises ``QuorumPending`` when no quorum covers the receipt ``within`` seconds.
        """
        return self._await_quorum(result, within)

    def private_filters(
        self, node: str, *, time_range: tuple[datetime, datetime] | None = None
    ) -> pb.PrivateFilters:
        """Blocking counterpart of :meth:`AsyncClient.private_filters`."""
        request = _filters_request(node, time_range)
        try:
            filters: pb.PrivateFilters = self._stub.GetPrivateFilters(
                request, timeout=self.timeout, metadata=self.identity.bearer()
            )
        except grpc.RpcError as exc:
            raise _error(exc, self.target) from None
        return filters

    def private_hit_check(
        self, spec: QuerySpec, *, filters: pb.PrivateFilters | None = None
    ) -> PrivateResult:
        """Blocking counterpart of :meth:`AsyncClient.private_hit_check`."""
        if filters is None:
            filters = self.private_filters(spec.target_node, time_range=scoped_range(spec))
        prepared, request = self._private_prepare(spec, filters)
        try:
            summary = self._stub.Submit(request, timeout=self.timeout, metadata=self.identity.bearer())
        except grpc.RpcError as exc:
            raise self._refused(exc, request) from None
        return self._private_finish(prepared, request, summary)

    def validate_emergency(self, signed_validation: pb.Envelope) -> ValidatedEvent:
        """Blocking counterpart of :meth:`AsyncClient.validate_emergency`."""
        request = pb.ValidateEmergencyRequest(signed_validation=signed_validation)
        try:
            response = self._stub.ValidateEmergency(
                request, timeout=self.timeout, metadata=self.identity.bearer()
            )
        except grpc.RpcError as exc:
            raise self._validation_refused(exc, signed_validation) from None
        return self._validated(response, signed_validation)

    def stream(self, spec: QuerySpec) -> Iterator[RecordView]:
        """Blocking counterpart of :meth:`AsyncClient.stream`, with the same caveat."""
        request = self._request(spec)
        digest = RecordsDigest()
        try:
            for chunk in self._stub.SubmitStream(
                request, timeout=self.timeout, metadata=self.identity.bearer()
            ):
                if chunk.HasField("summary"):
                    self._check(request, chunk.summary, digest)
                    return
                for record in chunk.records.records:
                    digest.update(record)
                    yield record_view(record)
        except grpc.RpcError as exc:
            raise self._refused(exc, request) from None
        raise Unavailable("the result stream ended without the node's statement")
