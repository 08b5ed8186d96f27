"""The gateway's gRPC service: the edge between investigators and the pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import grpc

from comity.core.federation import Federation
from comity.core.rpc import guard_stream, guard_unary
from comity.gateway.emergency import EmergencyTracker, validate_request
from comity.gateway.ledger import Ledger
from comity.gateway.pipeline import Pipeline
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["GatewayService"]


class GatewayService(pb_grpc.GatewayServicer):
    """Submit and SubmitStream, each one pass through the :class:`Pipeline`; ValidateEmergency."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        federation: Federation,
        emergencies: EmergencyTracker,
        ledger: Ledger,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pipeline = pipeline
        self._federation = federation
        self._emergencies = emergencies
        self._ledger = ledger
        self._clock = clock

    def use_federation(self, federation: Federation) -> None:
        """Verify emergency validations under a newly trusted federation file."""
        self._federation = federation

    @guard_unary
    async def Submit(
        self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.QueryResult:
        return await self._pipeline.submit(request, context.invocation_metadata())

    @guard_stream
    async def SubmitStream(
        self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.ResultChunk]:
        async for chunk in self._pipeline.submit_stream(request, context.invocation_metadata()):
            yield chunk

    @guard_unary
    async def GetPrivateFilters(
        self, request: pb.GetPrivateFiltersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PrivateFilters:
        return await self._pipeline.private_filters(request, context.invocation_metadata())

    @guard_unary
    async def ValidateEmergency(
        self, request: pb.ValidateEmergencyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ValidateEmergencyResponse:
        self._pipeline.require_federation()
        token = self._pipeline.authenticate(context.invocation_metadata())
        return await validate_request(
            request,
            token,
            federation=self._federation,
            tracker=self._emergencies,
            ledger=self._ledger,
            now=self._clock(),
        )
