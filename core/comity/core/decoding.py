"""Undecodable requests end at the handler boundary as INVALID_ARGUMENT, without a traceback.

gRPC decodes a request before the servicer runs; when the bytes are no message of the
method's type, its server logs a traceback per request and answers with the decoder's
exception class and the message type. :class:`DecodeGuard` gives every method of a server a
decoder that never raises: undecodable bytes become a marker, and the handler answers
INVALID_ARGUMENT (check ``REQUEST_DECODE``) before the servicer sees them. One warning line
per request goes to the server's log, without the bytes.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from comity.core import refusals
from comity.core.rpc import to_trailing_metadata

__all__ = ["DecodeGuard"]

_log = logging.getLogger("comity.rpc")

refusals.register(
    refusals.Check(
        "REQUEST_DECODE",
        "AUDIT_FIELDS",
        grpc.StatusCode.INVALID_ARGUMENT,
        "the request is not a valid message for this method; check that the client is built from the "
        "same comity.proto",
        "Prüm Decision 2008/615 art. 30 (what was supplied)",
    ),
)


class _Undecodable:
    """What an undecodable request becomes (the servicer never sees it)."""

    __slots__ = ()


_UNDECODABLE = _Undecodable()


def _safe(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # any decoder failure is the caller's malformed input
            return _UNDECODABLE

    return decode


async def _refuse(context: grpc.aio.ServicerContext[Any, Any], method: str) -> None:
    err = refusals.refuse("REQUEST_DECODE")
    _log.warning("undecodable request to %s refused", method)
    await context.abort(err.code, err.message, trailing_metadata=to_trailing_metadata(err))


class DecodeGuard(grpc.aio.ServerInterceptor):
    """A server interceptor that turns undecodable requests into INVALID_ARGUMENT."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = str(handler_call_details.method)
        decode = _safe(handler.request_deserializer)
        if handler.unary_unary is not None:
            changes = {"unary_unary": _unary(handler.unary_unary, method)}
        elif handler.unary_stream is not None:
            changes = {"unary_stream": _unary_stream(handler.unary_stream, method)}
        elif handler.stream_unary is not None:
            changes = {"stream_unary": _stream(handler.stream_unary, method)}
        else:
            changes = {"stream_stream": _stream_stream(handler.stream_stream, method)}
        replace: Callable[..., grpc.RpcMethodHandler[Any, Any]] = handler._replace  # type: ignore[attr-defined]  # a namedtuple
        return replace(request_deserializer=decode, **changes)


def _unary(behaviour: Any, method: str) -> Any:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if request is _UNDECODABLE:
            await _refuse(context, method)
        return await behaviour(request, context)

    return handle


async def _results(result: Any) -> AsyncIterator[Any]:
    if inspect.isasyncgen(result):
        async for item in result:
            yield item
    elif inspect.isawaitable(result):  # a handler that writes with context.write
        await result
    else:
        for item in result:
            yield item


def _unary_stream(behaviour: Any, method: str) -> Any:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        if request is _UNDECODABLE:
            await _refuse(context, method)
        async for item in _results(behaviour(request, context)):
            yield item

    return handle


async def _checked(
    requests: Any, context: grpc.aio.ServicerContext[Any, Any], method: str
) -> AsyncIterator[Any]:
    async for request in requests:
        if request is _UNDECODABLE:
            await _refuse(context, method)
        yield request


def _stream(behaviour: Any, method: str) -> Any:
    async def handle(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return await behaviour(_checked(requests, context, method), context)

    return handle


def _stream_stream(behaviour: Any, method: str) -> Any:
    async def handle(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        async for item in _results(behaviour(_checked(requests, context, method), context)):
            yield item

    return handle
