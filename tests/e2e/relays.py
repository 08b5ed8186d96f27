"""Relays that stand in a node's or the gateway's place on loopback and can alter what passes.

A :class:`Relay` passes every unary call through as bytes (a test may change a unary method's
answer, :attr:`Relay.answer`) and one streaming method chunk by chunk (:attr:`Relay.alter`).
:func:`relayed_federation` moves a demo node off its federation endpoint, and
:func:`node_relay` serves a relay there, with the node's TLS certificate and key, that reaches
the real node with the gateway's client certificate: to the gateway it is the node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc

from comity.core.federation import Federation
from comity.core.tls import node_channel_credentials, node_server_credentials
from comity.sdk.demo.setup import DemoFederation, build_demo_federation, free_ports
from comity.v1 import comity_pb2 as pb

Chunks = AsyncIterator[pb.ResultChunk]
Alter = Callable[[Chunks, grpc.aio.ServicerContext[Any, Any]], Chunks]
#: (method, the answer's bytes) → the bytes passed on.
Answer = Callable[[str, bytes], bytes]


async def passed(chunks: Chunks, context: grpc.aio.ServicerContext[Any, Any]) -> Chunks:
    """Every chunk as it came."""
    async for chunk in chunks:
        yield chunk


def unchanged(method: str, answer: bytes) -> bytes:
    """Every unary answer as it came."""
    return answer


class Relay(grpc.GenericRpcHandler):
    """Passes every unary call through as bytes (its answer through ``answer``); one streaming
    method through ``alter``."""

    def __init__(self, channel: grpc.aio.Channel, streamed: str, request_type: Any) -> None:
        self._channel = channel
        self._streamed = streamed
        self._request_type = request_type
        self.alter: Alter = passed
        self.answer: Answer = unchanged

    def reset(self) -> None:
        """Pass everything unchanged again."""
        self.alter = passed
        self.answer = unchanged

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = details.method  # type: ignore[attr-defined]
        if method == self._streamed:
            return grpc.unary_stream_rpc_method_handler(
                self._stream,
                request_deserializer=self._request_type.FromString,
                response_serializer=pb.ResultChunk.SerializeToString,
            )
        forward = self._channel.unary_unary(method)

        async def unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            try:
                answer: bytes = await forward(
                    request, metadata=_passed_on(context), timeout=context.time_remaining()
                )
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "", trailing_metadata=_trailers(exc))
            return self.answer(method, answer)

        return grpc.unary_unary_rpc_method_handler(unary)

    async def _stream(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Chunks:
        call = self._channel.unary_stream(
            self._streamed,
            request_serializer=self._request_type.SerializeToString,
            response_deserializer=pb.ResultChunk.FromString,
        )(request, metadata=_passed_on(context), timeout=context.time_remaining())
        try:
            async for chunk in self.alter(call, context):  # type: ignore[arg-type]
                yield chunk
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "", trailing_metadata=_trailers(exc))


def _trailers(exc: grpc.aio.AioRpcError) -> tuple[tuple[str, str | bytes], ...]:
    return tuple((k, v) for k, v in exc.trailing_metadata() or ())


def _passed_on(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in context.invocation_metadata() or () if k == "authorization")


def relayed_federation(
    tmp: Path, *, node: str, people: int, seed: int, stream_batch: int = 0
) -> tuple[DemoFederation, str, int]:
    """A demo federation whose ``node`` listens on a free port instead of its federation endpoint
    (left for a relay); returns the federation, that endpoint and the node's real port.
    ``stream_batch``: records per streamed batch (0: the node's default)."""
    fed = build_demo_federation(tmp, people=people, seed=seed)
    config = fed.node_configs[node]
    endpoint = Federation.load(fed.layout.federation_file).node(node).endpoint
    (port,) = free_ports(1)
    text = config.read_text()
    listen = f'listen = "{endpoint}"'
    assert listen in text and "[limits]\n" in text
    text = text.replace(listen, f'listen = "127.0.0.1:{port}"')
    if stream_batch:
        text = text.replace("[limits]\n", f"[limits]\nstream_batch = {stream_batch}\n")
    config.write_text(text)
    return fed, endpoint, port


@asynccontextmanager
async def node_relay(fed: DemoFederation, *, node: str, endpoint: str, port: int) -> AsyncIterator[Relay]:
    """A relay on ``node``'s federation ``endpoint`` (its TLS identity) to the real node on ``port``."""
    federation = Federation.load(fed.layout.federation_file)
    g, n = fed.layout.gateway, fed.layout.nodes[node]
    to_node = grpc.aio.secure_channel(
        f"127.0.0.1:{port}",
        node_channel_credentials(federation.node(node), g.client_cert, g.client_key),
        options=[("grpc.ssl_target_name_override", endpoint.rsplit(":", 1)[0])],
    )
    relay = Relay(to_node, "/comity.v1.DataNode/ExecuteStream", pb.ExecuteRequest)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((relay,))
    server.add_secure_port(
        endpoint, node_server_credentials(n.tls_cert, n.tls_key, federation=federation, node_id=node)
    )
    await server.start()
    try:
        yield relay
    finally:
        await server.stop(0)
        await to_node.close()
