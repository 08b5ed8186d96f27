"""The gateway's gRPC service: the edge between investigators and the pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from comity.core.rpc import guard_stream, guard_unary
from comity.gateway.pipeline import Pipeline
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["GatewayService"]


class GatewayService(pb_grpc.GatewayServicer):
    """Submit and SubmitStream, each one pass through the :class:`Pipeline`."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

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
