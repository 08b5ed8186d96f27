"""OpenTelemetry for gRPC: server and client interceptors that carry one trace across hops.

The server interceptor continues the caller's W3C trace context and makes a span per call;
the client interceptors inject it. Both count calls and time them by method and outcome.
Health checks and reflection get no span or metric: probes arrive every few seconds and
would cost CPU and drown the queries. Attributes pass the allow-list of
:func:`comity.core.telemetry.safe_attributes`.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Final, cast

import grpc
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from comity.core.telemetry import INSTRUMENTATION, PROPAGATOR, dropped_by_sampler, safe_attributes

__all__ = [
    "TelemetryClientInterceptor",
    "TelemetryServerInterceptor",
    "TelemetryStreamClientInterceptor",
    "client_interceptors",
]


# Probes arrive every few seconds from load balancers and orchestrators; tracing them would
# cost CPU and drown the queries.
_UNTRACED_PREFIXES: Final = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


def _split_method(full: str | bytes) -> tuple[str, str]:
    text = full.decode() if isinstance(full, bytes) else full
    service, _, method = text.lstrip("/").partition("/")
    return service, method


def _untraced(method: str | bytes) -> bool:
    text = method.decode() if isinstance(method, bytes) else method
    return text.startswith(_UNTRACED_PREFIXES)


def _carrier(metadata: object) -> dict[str, str]:
    pairs = cast("Iterable[tuple[str, str | bytes]]", metadata or ())
    return {key: value for key, value in pairs if isinstance(value, str)}


def _status(code: object, *, unset: grpc.StatusCode = grpc.StatusCode.UNKNOWN) -> grpc.StatusCode:
    if code is None:
        return unset
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status
    return grpc.StatusCode.UNKNOWN


def _server_code(set_code: object, error: BaseException | None) -> grpc.StatusCode:
    """The status a handler ended with: the one it set or aborted with, else what its exit means."""
    if set_code is not None:
        return _status(set_code)
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN  # what grpc answers for an exception a handler did not translate


class _RpcMetrics:
    """A request counter (by method and outcome) and a latency histogram for one side of a call."""

    def __init__(self, side: str, meter_provider: metrics.MeterProvider | None) -> None:
        meter = metrics.get_meter(INSTRUMENTATION, meter_provider=meter_provider)
        self._requests = meter.create_counter(
            f"comity.rpc.{side}.requests", unit="{request}", description=f"gRPC {side} calls by outcome"
        )
        self._duration = meter.create_histogram(
            f"comity.rpc.{side}.duration", unit="s", description=f"gRPC {side} call latency"
        )

    def record(self, service: str, method: str, code: grpc.StatusCode, seconds: float) -> None:
        attributes = safe_attributes({"service": service, "method": method, "outcome": code.name})
        self._requests.add(1, attributes)
        self._duration.record(seconds, attributes)


def _finish(current: Span, code: grpc.StatusCode, error: BaseException | None) -> None:
    current.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK:
        current.set_status(Status(StatusCode.ERROR, code.name))
    if error is not None and not isinstance(error, grpc.aio.AbortError | grpc.aio.AioRpcError):
        current.set_attribute("error.type", type(error).__name__)


class TelemetryServerInterceptor(grpc.aio.ServerInterceptor):
    """Continues the caller's trace and times every call, except health and reflection.

    Each call gets a SERVER span named ``package.Service/Method`` whose parent is the W3C
    ``traceparent`` in the metadata, and counts in ``comity.rpc.server.requests`` and
    ``comity.rpc.server.duration`` by method and outcome (the gRPC status name).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(INSTRUMENTATION, tracer_provider=tracer_provider)
        self._metrics = _RpcMetrics("server", meter_provider)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """Wrap the handler of a traced method; pass health and reflection through untouched."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or _untraced(method):
            return handler
        text = method.decode() if isinstance(method, bytes) else method
        return self._wrap(handler, text, handler_call_details.invocation_metadata)

    def _wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str, metadata: object
    ) -> grpc.RpcMethodHandler[Any, Any]:
        kinds = (
            (handler.unary_unary, grpc.unary_unary_rpc_method_handler),
            (handler.unary_stream, grpc.unary_stream_rpc_method_handler),
            (handler.stream_unary, grpc.stream_unary_rpc_method_handler),
            (handler.stream_stream, grpc.stream_stream_rpc_method_handler),
        )
        for behaviour, make in kinds:
            if behaviour is None:
                continue
            if inspect.isasyncgenfunction(behaviour):
                wrapped: Callable[..., Any] = self._wrap_generator(behaviour, method, metadata)
            elif inspect.iscoroutinefunction(behaviour):
                wrapped = self._wrap_coroutine(behaviour, method, metadata)
            else:
                return handler  # a synchronous handler: the aio server runs it elsewhere; leave it be
            return make(
                wrapped,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    @contextmanager
    def _server_span(self, method: str, metadata: object, context: Any) -> Iterator[None]:
        service, name = _split_method(method)
        parent = PROPAGATOR.extract(_carrier(metadata))
        start = time.perf_counter()
        remote = trace.get_current_span(parent)
        scope: AbstractContextManager[Span]
        if dropped_by_sampler(remote):
            # The caller's trace is unsampled: no span, but its context stays current, so the
            # trace id and the unsampled flag go on to the next hop.
            scope = trace.use_span(remote, record_exception=False, set_status_on_exception=False)
        else:
            scope = self._tracer.start_as_current_span(
                f"{service}/{name}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes=safe_attributes({"rpc.system": "grpc", "service": service, "method": name}),
                record_exception=False,
                set_status_on_exception=False,
            )
        with scope as current:
            error: BaseException | None = None
            try:
                yield
            except BaseException as exc:
                error = exc
                raise
            finally:
                code = _server_code(context.code(), error)
                _finish(current, code, error)
                self._metrics.record(service, name, code, time.perf_counter() - start)

    def _wrap_coroutine(
        self, behaviour: Callable[..., Awaitable[Any]], method: str, metadata: object
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        async def traced(request: Any, context: Any) -> Any:
            with self._server_span(method, metadata, context):
                return await behaviour(request, context)

        return traced

    def _wrap_generator(
        self, behaviour: Callable[..., AsyncIterator[Any]], method: str, metadata: object
    ) -> Callable[[Any, Any], AsyncIterator[Any]]:
        async def traced(request: Any, context: Any) -> AsyncIterator[Any]:
            with self._server_span(method, metadata, context):
                async for response in behaviour(request, context):
                    yield response

        return traced


class _ClientTracing:
    """What both client interceptors share: the span, the injected context, the metrics."""

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(INSTRUMENTATION, tracer_provider=tracer_provider)
        self._metrics = _RpcMetrics("client", meter_provider)

    def _start(self, details: grpc.aio.ClientCallDetails) -> tuple[Span, grpc.aio.ClientCallDetails, float]:
        service, name = _split_method(details.method)
        current = trace.get_current_span()
        if not dropped_by_sampler(current):  # else the unsampled parent is sent on, and no span made
            current = self._tracer.start_span(
                f"{service}/{name}",
                kind=SpanKind.CLIENT,
                attributes=safe_attributes({"rpc.system": "grpc", "service": service, "method": name}),
            )
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier, context=trace.set_span_in_context(current))
        pairs = [*cast("Iterable[tuple[str, str | bytes]]", details.metadata or ()), *carrier.items()]
        metadata = grpc.aio.Metadata(*pairs)
        traced = grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )
        return current, traced, time.perf_counter()

    def _end(
        self, current: Span, details: grpc.aio.ClientCallDetails, code: grpc.StatusCode, start: float
    ) -> None:
        _finish(current, code, None)
        current.end()
        self._metrics.record(*_split_method(details.method), code, time.perf_counter() - start)


class TelemetryClientInterceptor(_ClientTracing, grpc.aio.UnaryUnaryClientInterceptor):
    """Starts a CLIENT span per unary call and sends its W3C trace context in the metadata.

    Counts in ``comity.rpc.client.requests`` and ``comity.rpc.client.duration`` as the server
    side does, so the gateway reports each node's latency as it sees it.
    """

    async def intercept_unary_unary(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Any], Awaitable[grpc.aio.UnaryUnaryCall[Any, Any]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        """Trace one unary call; the call is returned as is, its outcome untouched."""
        if _untraced(client_call_details.method):
            return await continuation(client_call_details, request)
        current, details, start = self._start(client_call_details)
        code = grpc.StatusCode.UNKNOWN
        try:
            call = await continuation(details, request)
            # code() waits for the status without raising, so the caller still sees any error.
            code = _status(await call.code())
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            self._end(current, details, code, start)
        return call


class TelemetryStreamClientInterceptor(_ClientTracing, grpc.aio.UnaryStreamClientInterceptor):
    """The same for server-streaming calls; the span ends when the stream does.

    A separate class because a ``grpc.aio`` channel files each interceptor under the first
    call shape it implements only.
    """

    async def intercept_unary_stream(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Any], Awaitable[grpc.aio.UnaryStreamCall[Any, Any]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> AsyncIterator[Any] | grpc.aio.UnaryStreamCall[Any, Any]:
        """Trace one server-streaming call; the span ends when the stream does."""
        if _untraced(client_call_details.method):
            return await continuation(client_call_details, request)
        current, details, start = self._start(client_call_details)
        try:
            call = await continuation(details, request)
        except BaseException:
            self._end(current, details, grpc.StatusCode.UNKNOWN, start)
            raise
        return self._stream(call, current, details, start)

    async def _stream(
        self,
        call: grpc.aio.UnaryStreamCall[Any, Any],
        current: Span,
        details: grpc.aio.ClientCallDetails,
        start: float,
    ) -> AsyncIterator[Any]:
        code = grpc.StatusCode.CANCELLED  # unless the stream runs to its end or fails
        try:
            async for response in call:
                yield response
            code = _status(await call.code())
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            raise
        finally:
            self._end(current, details, code, start)


def client_interceptors(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> list[grpc.aio.ClientInterceptor]:
    """The interceptors for a ``grpc.aio`` channel: ``secure_channel(..., interceptors=...)``."""
    return [
        TelemetryClientInterceptor(tracer_provider=tracer_provider, meter_provider=meter_provider),
        TelemetryStreamClientInterceptor(tracer_provider=tracer_provider, meter_provider=meter_provider),
    ]
