"""OpenTelemetry for Comity: traces and metrics from config, gRPC interceptors, privacy by allow-list.

One query is one trace: the SDK's client interceptor injects W3C trace context into the gRPC
metadata, the gateway's server interceptor continues it, and the gateway's client interceptor
carries it on to the node (the interceptors are in :mod:`comity.core.rpc_telemetry`). Pipeline
steps add child spans with :func:`span`.

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

import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Final, Literal, cast

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
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from comity.core.errors import ConfigError

if TYPE_CHECKING:
    from comity.core.configfile import Section
    from comity.core.logs import LogFormat

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "INSTRUMENTATION",
    "PROPAGATOR",
    "SHORT_NAMES",
    "Exporter",
    "Telemetry",
    "TelemetryConfig",
    "dropped_by_sampler",
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
PROPAGATOR: Final = TraceContextTextMapPropagator()

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
        propagate.set_global_textmap(PROPAGATOR)
        configure_logging(config.log_level, config.log_format)
        _active = Telemetry(config, tracer_provider, meter_provider)
        _log.info("telemetry: exporter %s, sample ratio %s", config.exporter, config.sample_ratio)
        return _active


# ----------------------------------------------------------------------------- spans


def dropped_by_sampler(parent: Span) -> bool:
    """Whether a child of ``parent`` would not be recorded: ``parent`` is part of an unsampled trace.

    Holds for the parent-based sampler :func:`setup_telemetry` installs (and the SDK's
    default), which drops every child of an unsampled parent, local or remote. Callers then
    skip building the span and its attributes, and keep ``parent`` as the current context so
    that the trace id and the unsampled flag still travel on.
    """
    context = parent.get_span_context()
    return context.is_valid and not context.trace_flags.sampled and not parent.is_recording()


@contextmanager
def span(name: str, **attributes: object) -> Iterator[Span]:
    """A child span of the current one for a pipeline step, e.g. ``span("gateway.decide", query_id=q)``.

    Only allowed attributes are kept (see :func:`safe_attributes`). An exception leaving the
    block marks the span as an error with the exception's class name, never its message.
    In an unsampled trace it yields the current (non-recording) span instead of a new one.
    """
    parent = trace.get_current_span()
    if dropped_by_sampler(parent):
        # Most traces are not sampled; building a span the sampler drops costs CPU per request.
        yield parent
        return
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
