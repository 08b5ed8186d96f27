"""OpenTelemetry for Comity: traces and metrics from config, gRPC interceptors, privacy by allow-list.

One query is one trace: the SDK's client interceptor injects W3C trace context into the gRPC
metadata, the gateway's server interceptor continues it, and the gateway's client interceptor
carries it on to the node. Pipeline steps add child spans with :func:`span`.

Privacy: a span, metric or log line is seen by operators and shipped to collectors that are not
party to the query, so no selector value or personal data may reach one. Attributes therefore
pass an allow-list (:data:`ALLOWED_ATTRIBUTES`): a name not on it is dropped, and so is a value
that does not look like an identifier (short, no spaces, no ``@`` or ``+``). Exceptions are
recorded by class name only, because their messages may quote a request. Baggage is not
propagated, so nothing but trace ids crosses a process boundary.

Cost: a do-nothing exporter still adds a large share of a request's CPU, so traces are
sampled (``sample_ratio``, parent-based so one query is sampled everywhere or nowhere) and the
health and reflection services get no span or metric at all.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import grpc
from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from comity.core.errors import ConfigError

if TYPE_CHECKING:
    from comity.core.configfile import Section
    from comity.core.logs import LogFormat

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "SHORT_NAMES",
    "Exporter",
    "Telemetry",
    "TelemetryClientInterceptor",
    "TelemetryConfig",
    "TelemetryServerInterceptor",
    "TelemetryStreamClientInterceptor",
    "client_interceptors",
    "record_audit_batch",
    "record_decision",
    "safe_attributes",
    "set_log_size",
    "setup_telemetry",
    "span",
]

_log = logging.getLogger("comity.telemetry")

INSTRUMENTATION: Final = "comity"
Exporter = Literal["none", "console", "otlp"]
_EXPORTERS: Final = ("none", "console", "otlp")
_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
_FORMATS: Final = ("json", "text")

# ----------------------------------------------------------------------------- attributes

#: Short names accepted by :func:`span` keyword arguments, and the attribute each becomes.
SHORT_NAMES: Final[Mapping[str, str]] = {
    "query_id": "comity.query_id",
    "node": "comity.node",
    "agency": "comity.agency",
    "kind": "comity.kind",
    "outcome": "comity.outcome",
    "rule_codes": "comity.rule_codes",
    "rule_code": "comity.rule_code",
    "step": "comity.step",
    "bundle_digest": "comity.bundle_digest",
    "batch_size": "comity.batch_size",
    "record_count": "comity.record_count",
    "log_size": "comity.log_size",
    "method": "rpc.method",
    "service": "rpc.service",
}

#: Every attribute name a span, metric point or log line may carry. Nothing here can hold a
#: selector, a name, a case narrative or any other personal data.
ALLOWED_ATTRIBUTES: Final = frozenset(
    {*SHORT_NAMES.values(), "rpc.system", "rpc.grpc.status_code", "error.type"}
)

# Identifier-like values only: a second line of defence should an allowed name ever be handed
# free text. It refuses e-mail addresses, phone numbers written with "+", names with spaces.
# The interceptors use W3C trace context directly, whatever the process's global propagator:
# baggage could carry arbitrary values across the border, so it is never sent or read.
_PROPAGATOR: Final = TraceContextTextMapPropagator()

_SAFE_TEXT = re.compile(r"[A-Za-z0-9_.:/\-]{0,128}")
_MAX_ITEMS = 32


def _safe_value(value: object) -> AttributeValue | None:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if _SAFE_TEXT.fullmatch(value) else None
    if isinstance(value, list | tuple | frozenset | set):
        items = list(value)
        if len(items) > _MAX_ITEMS or not all(isinstance(v, str) and _SAFE_TEXT.fullmatch(v) for v in items):
            return None
        texts = [str(v) for v in items]
        # A set has no order; sort it so equal sets make equal attributes (and metric series).
        return sorted(texts) if isinstance(value, frozenset | set) else texts
    return None


def safe_attributes(attributes: Mapping[str, object]) -> dict[str, AttributeValue]:
    """Only the allowed attributes of ``attributes``, with short names expanded.

    A name not in :data:`ALLOWED_ATTRIBUTES` (or :data:`SHORT_NAMES`) is dropped; so is a value
    that is not a number, a bool, an identifier-like string or a list of such strings. Nothing
    is logged about what was dropped: the log formatter calls this too.
    """
    out: dict[str, AttributeValue] = {}
    for name, value in attributes.items():
        full = SHORT_NAMES.get(name, name)
        safe = _safe_value(value) if full in ALLOWED_ATTRIBUTES else None
        if safe is not None:
            out[full] = safe
    return out


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TelemetryConfig:
    """What to export where, how much to sample, and how to log.

    ``exporter`` is ``none`` (spans and metrics are made but not sent; trace ids still reach the
    logs), ``console`` (stdout, for trying things out) or ``otlp`` (gRPC to ``endpoint``, e.g.
    an OpenTelemetry collector; without one, ``OTEL_EXPORTER_OTLP_ENDPOINT``). ``insecure``
    chooses plaintext; unset, an ``http://`` endpoint means plaintext and ``https://`` TLS.
    ``sample_ratio`` is the share of new traces kept; a trace started upstream keeps its
    parent's decision.
    """

    service_name: str = "comity"
    exporter: Exporter = "none"
    endpoint: str | None = None
    insecure: bool | None = None
    sample_ratio: float = 0.1
    metric_interval_seconds: float = 60.0
    log_level: str = "INFO"
    log_format: LogFormat = "json"

    def __post_init__(self) -> None:
        if self.exporter not in _EXPORTERS:
            raise ConfigError(f"must be one of {', '.join(_EXPORTERS)}", field="telemetry.exporter")
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ConfigError("must be between 0 and 1", field="telemetry.sample_ratio")
        if self.log_level.upper() not in _LEVELS:
            raise ConfigError(f"must be one of {', '.join(_LEVELS)}", field="telemetry.log_level")
        if self.log_format not in _FORMATS:
            raise ConfigError("must be json or text", field="telemetry.log_format")

    @classmethod
    def from_section(cls, section: Section, *, service_name: str = "comity") -> TelemetryConfig:
        """Read a ``[telemetry]`` table (absent keys take the defaults), then reject unknown keys.

        ``service_name`` is the default for the table's own ``service_name``, so each component
        can pass its name (``comity-gateway``, ``comity-node``).
        """
        exporter = section.text("exporter", "none", choices=_EXPORTERS)
        endpoint = section.text("endpoint", "") or None
        if exporter == "otlp" and endpoint is None and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            # The exporter would fall back on localhost; say so instead of sending nowhere.
            raise section.error(
                "endpoint",
                "required when exporter is otlp (e.g. http://collector:4317), "
                "unless OTEL_EXPORTER_OTLP_ENDPOINT is set",
            )
        sample = section.number("sample_ratio", 0.1, minimum=0.0)
        if sample > 1.0:
            raise section.error("sample_ratio", f"must be at most 1; got {sample}")
        config = cls(
            service_name=section.text("service_name", service_name),
            exporter=cast(Exporter, exporter),
            endpoint=endpoint,
            insecure=section.flag("insecure") if section.has("insecure") else None,
            sample_ratio=sample,
            metric_interval_seconds=section.number("metric_interval_seconds", 60.0, minimum=1.0),
            log_level=section.text("log_level", "INFO", choices=_LEVELS),
            log_format=cast("LogFormat", section.text("log_format", "json", choices=_FORMATS)),
        )
        section.done()
        return config


# ----------------------------------------------------------------------------- setup


@dataclass(frozen=True)
class Telemetry:
    """The installed providers; :meth:`shutdown` flushes and stops the exporters."""

    config: TelemetryConfig
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def force_flush(self) -> None:
        """Export whatever spans and metric points are buffered now."""
        self.tracer_provider.force_flush()
        self.meter_provider.force_flush()

    def shutdown(self) -> None:
        """Flush and stop exporting (call once, at process exit)."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


_lock = threading.Lock()
_active: Telemetry | None = None


def _version() -> str:
    try:
        return _metadata.version("comity")
    except _metadata.PackageNotFoundError:
        return "unknown"


def _otlp_exporters(config: TelemetryConfig) -> tuple[SpanExporter, MetricExporter]:
    try:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ConfigError(
            "the OTLP exporter is not installed",
            field="telemetry.exporter",
            hint="pip install opentelemetry-exporter-otlp-proto-grpc, or use exporter = 'console'",
        ) from None
    return (
        OTLPSpanExporter(endpoint=config.endpoint, insecure=config.insecure),
        OTLPMetricExporter(endpoint=config.endpoint, insecure=config.insecure),
    )


def _exporters(config: TelemetryConfig) -> tuple[SpanExporter | None, MetricExporter | None]:
    if config.exporter == "console":
        return ConsoleSpanExporter(), ConsoleMetricExporter()
    if config.exporter == "otlp":
        return _otlp_exporters(config)
    return None, None


def setup_telemetry(
    config: TelemetryConfig,
    *,
    span_exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """Install tracer and meter providers, the W3C propagator and logging; once per process.

    OpenTelemetry's global providers can be set only once, so a second call returns the
    providers the first one installed (with a warning if the config differs). Extra
    ``span_exporters`` (exported synchronously) and ``metric_readers`` are for tests.
    """
    global _active
    from comity.core.logs import configure_logging

    with _lock:
        if _active is not None:
            if _active.config != config:
                _log.warning("telemetry is already set up; keeping the first configuration")
            return _active
        resource = Resource.create({"service.name": config.service_name, "service.version": _version()})
        tracer_provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sample_ratio))
        )
        span_exporter, metric_exporter = _exporters(config)
        if span_exporter is not None:
            tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        for extra in span_exporters:
            tracer_provider.add_span_processor(SimpleSpanProcessor(extra))
        readers = list(metric_readers)
        if metric_exporter is not None:
            interval = int(config.metric_interval_seconds * 1000)
            readers.append(PeriodicExportingMetricReader(metric_exporter, export_interval_millis=interval))
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        # Trace context only: baggage could carry arbitrary values across the border.
        propagate.set_global_textmap(_PROPAGATOR)
        configure_logging(config.log_level, config.log_format)
        _active = Telemetry(config, tracer_provider, meter_provider)
        _log.info("telemetry: exporter %s, sample ratio %s", config.exporter, config.sample_ratio)
        return _active


# ----------------------------------------------------------------------------- spans


@contextmanager
def span(name: str, **attributes: object) -> Iterator[Span]:
    """A child span of the current one for a pipeline step, e.g. ``span("gateway.decide", query_id=q)``.

    Only allowed attributes are kept (see :func:`safe_attributes`). An exception leaving the
    block marks the span as an error with the exception's class name, never its message.
    """
    tracer = trace.get_tracer(INSTRUMENTATION)
    with tracer.start_as_current_span(
        name, attributes=safe_attributes(attributes), record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__name__)
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


# ----------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class _Instruments:
    decisions: metrics.Counter
    decision_rules: metrics.Counter
    audit_batch_size: metrics.Histogram
    audit_commit: metrics.Histogram
    log_size: metrics._Gauge  # public name pending in the API; create_gauge returns it


_instruments: _Instruments | None = None


def _meter_instruments() -> _Instruments:
    # Made from the global meter on first use; before setup_telemetry the API's proxy meter
    # hands out instruments that start recording once a provider is installed.
    global _instruments
    if _instruments is None:
        meter = metrics.get_meter(INSTRUMENTATION)
        _instruments = _Instruments(
            decisions=meter.create_counter(
                "comity.decisions", unit="{decision}", description="Gateway policy decisions by outcome"
            ),
            decision_rules=meter.create_counter(
                "comity.decision.rules", unit="{rule}", description="Rules that fired, by rule code"
            ),
            audit_batch_size=meter.create_histogram(
                "comity.audit.batch.size", unit="{entry}", description="Entries per audit group commit"
            ),
            audit_commit=meter.create_histogram(
                "comity.audit.commit.duration", unit="s", description="Time to commit one audit batch"
            ),
            log_size=meter.create_gauge(
                "comity.audit.log.size", unit="{entry}", description="Entries in the transparency log"
            ),
        )
    return _instruments


def record_decision(outcome: str, rule_codes: Sequence[str] = ()) -> None:
    """Count one policy decision (``allow`` / ``deny``) and each rule code that fired."""
    m = _meter_instruments()
    m.decisions.add(1, safe_attributes({"outcome": outcome}))
    for code in rule_codes:
        m.decision_rules.add(1, safe_attributes({"outcome": outcome, "rule_code": code}))


def record_audit_batch(size: int, commit_seconds: float) -> None:
    """Record one audit group commit: how many entries, and how long the commit took."""
    m = _meter_instruments()
    m.audit_batch_size.record(size)
    m.audit_commit.record(commit_seconds)


def set_log_size(n: int) -> None:
    """Report the transparency log's current size (entries)."""
    _meter_instruments().log_size.set(n)


# ----------------------------------------------------------------------------- gRPC

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
        parent = _PROPAGATOR.extract(_carrier(metadata))
        attributes = safe_attributes({"rpc.system": "grpc", "service": service, "method": name})
        start = time.perf_counter()
        with self._tracer.start_as_current_span(
            f"{service}/{name}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as current:
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
        current = self._tracer.start_span(
            f"{service}/{name}",
            kind=SpanKind.CLIENT,
            attributes=safe_attributes({"rpc.system": "grpc", "service": service, "method": name}),
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(current))
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
