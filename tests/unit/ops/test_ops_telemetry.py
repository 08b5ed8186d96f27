"""Telemetry: one trace across gRPC hops, health checks untraced, metrics by outcome, privacy."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import baggage, context, propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from comity.core.configfile import Section
from comity.core.errors import ConfigError
from comity.core.rpc_telemetry import TelemetryServerInterceptor, client_interceptors
from comity.core.telemetry import (
    ALLOWED_ATTRIBUTES,
    TelemetryConfig,
    record_audit_batch,
    record_decision,
    safe_attributes,
    set_log_size,
    setup_telemetry,
    span,
)

if TYPE_CHECKING:
    from conftest import Captured

SELECTOR = "alice.martin@example.com"
PHONE = "+1 555 0100"


class Relay:
    """A toy service: Forward calls the backend's Echo, so a request makes two hops."""

    def __init__(self) -> None:
        self.backend: grpc.aio.Channel | None = None

    async def echo(self, request: bytes, context: Any) -> bytes:
        return request

    async def forward(self, request: bytes, context: Any) -> bytes:
        assert self.backend is not None
        # A careless caller hands over a selector: the allow-list must drop it.
        with span("relay.lookup", query_id="q-1", selector=SELECTOR, node=SELECTOR):
            call = self.backend.unary_unary("/test.Relay/Echo")
            answer: bytes = await call(request, timeout=5)
        return answer

    async def stream(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        for i in range(3):
            yield request + bytes([i])

    async def headers(self, request: bytes, context: Any) -> bytes:
        return ",".join(sorted(key for key, _ in context.invocation_metadata())).encode()

    async def traceparent(self, request: bytes, context: Any) -> bytes:
        return ",".join(str(v) for k, v in context.invocation_metadata() if k == "traceparent").encode()

    async def forward_trace(self, request: bytes, context: Any) -> bytes:
        assert self.backend is not None
        with span("relay.lookup", query_id="q-1"):
            answer: bytes = await self.backend.unary_unary("/test.Relay/Traceparent")(request, timeout=5)
        return answer

    async def refuse(self, request: bytes, context: Any) -> bytes:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "refused")
        raise AssertionError("unreachable")


async def _server(relay: Relay) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    server = grpc.aio.server(interceptors=[TelemetryServerInterceptor()])
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(relay.echo),
        "Forward": grpc.unary_unary_rpc_method_handler(relay.forward),
        "Stream": grpc.unary_stream_rpc_method_handler(relay.stream),
        "Refuse": grpc.unary_unary_rpc_method_handler(relay.refuse),
        "Headers": grpc.unary_unary_rpc_method_handler(relay.headers),
        "Traceparent": grpc.unary_unary_rpc_method_handler(relay.traceparent),
        "ForwardTrace": grpc.unary_unary_rpc_method_handler(relay.forward_trace),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Relay", handlers),))
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await checker.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, port, checker


@pytest.fixture
async def relay() -> AsyncIterator[tuple[grpc.aio.Channel, Relay]]:
    backend_relay, front_relay = Relay(), Relay()
    backend, backend_port, _ = await _server(backend_relay)
    front, front_port, _ = await _server(front_relay)
    front_relay.backend = grpc.aio.insecure_channel(
        f"127.0.0.1:{backend_port}", interceptors=client_interceptors()
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{front_port}", interceptors=client_interceptors())
    yield channel, front_relay
    await channel.close()
    await front_relay.backend.close()
    await front.stop(None)
    await backend.stop(None)


def _by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def _settled(captured: Captured, name: str, count: int) -> tuple[ReadableSpan, ...]:
    # The client sees an aborted call's status as soon as it is sent; the server's span ends
    # just after, on the server's task. Wait for it (bounded) rather than race it.
    for _ in range(200):
        spans = captured.spans.get_finished_spans()
        if len(_by_name(spans, name)) >= count:
            return spans
        await asyncio.sleep(0.01)
    return captured.spans.get_finished_spans()


def _one(spans: tuple[ReadableSpan, ...], name: str, kind: SpanKind) -> ReadableSpan:
    found = [s for s in _by_name(spans, name) if s.kind == kind]
    assert len(found) == 1, [(s.name, s.kind) for s in spans]
    return found[0]


def _parent_id(child: ReadableSpan) -> int:
    assert child.parent is not None
    return child.parent.span_id


async def test_client_and_servers_share_one_trace(
    captured: Captured, relay: tuple[grpc.aio.Channel, Relay]
) -> None:
    channel, _ = relay
    assert await channel.unary_unary("/test.Relay/Forward")(b"hi", timeout=5) == b"hi"
    spans = captured.spans.get_finished_spans()
    client = _one(spans, "test.Relay/Forward", SpanKind.CLIENT)
    server = _one(spans, "test.Relay/Forward", SpanKind.SERVER)
    step = _one(spans, "relay.lookup", SpanKind.INTERNAL)
    hop_client = _one(spans, "test.Relay/Echo", SpanKind.CLIENT)
    hop_server = _one(spans, "test.Relay/Echo", SpanKind.SERVER)
    chain = [client, server, step, hop_client, hop_server]
    assert {s.context.trace_id for s in chain} == {client.context.trace_id}
    assert client.parent is None
    for parent, child in itertools.pairwise(chain):
        assert _parent_id(child) == parent.context.span_id
    assert server.parent is not None and server.parent.is_remote
    assert server.attributes is not None
    assert server.attributes["rpc.method"] == "Forward"
    assert server.attributes["rpc.service"] == "test.Relay"
    assert server.attributes["rpc.grpc.status_code"] == 0


async def test_streaming_call_is_traced_to_its_end(
    captured: Captured, relay: tuple[grpc.aio.Channel, Relay]
) -> None:
    channel, _ = relay
    chunks = [c async for c in channel.unary_stream("/test.Relay/Stream")(b"x", timeout=5)]
    assert chunks == [b"x\x00", b"x\x01", b"x\x02"]
    spans = captured.spans.get_finished_spans()
    client = _one(spans, "test.Relay/Stream", SpanKind.CLIENT)
    server = _one(spans, "test.Relay/Stream", SpanKind.SERVER)
    assert server.context.trace_id == client.context.trace_id
    assert _parent_id(server) == client.context.span_id


async def test_refusal_is_an_error_span_and_counted_by_outcome(
    captured: Captured, relay: tuple[grpc.aio.Channel, Relay]
) -> None:
    channel, _ = relay
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await channel.unary_unary("/test.Relay/Refuse")(b"x", timeout=5)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    spans = await _settled(captured, "test.Relay/Refuse", 2)
    for kind in (SpanKind.CLIENT, SpanKind.SERVER):
        refusal = _one(spans, "test.Relay/Refuse", kind)
        assert refusal.status.status_code == StatusCode.ERROR
        assert refusal.attributes is not None
        assert refusal.attributes["rpc.grpc.status_code"] == grpc.StatusCode.PERMISSION_DENIED.value[0]
        assert "error.type" not in refusal.attributes  # a gRPC status, not a crash
    points = _points(captured, "comity.rpc.server.requests")
    assert any(
        p["attributes"]
        == {"rpc.service": "test.Relay", "rpc.method": "Refuse", "comity.outcome": "PERMISSION_DENIED"}
        for p in points
    )
    assert _points(captured, "comity.rpc.server.duration")


async def test_health_checks_make_no_span(captured: Captured, relay: tuple[grpc.aio.Channel, Relay]) -> None:
    channel, _ = relay
    stub = health_pb2_grpc.HealthStub(channel)
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert captured.spans.get_finished_spans() == ()
    methods = {p["attributes"].get("rpc.service") for p in _points(captured, "comity.rpc.server.requests")}
    assert "grpc.health.v1.Health" not in methods


async def test_selector_reaches_no_span_or_metric(
    captured: Captured, relay: tuple[grpc.aio.Channel, Relay]
) -> None:
    channel, _ = relay
    await channel.unary_unary("/test.Relay/Forward")(b"hi", timeout=5)
    record_decision("deny", ["SERIOUS_CRIME", SELECTOR])
    step = _one(captured.spans.get_finished_spans(), "relay.lookup", SpanKind.INTERNAL)
    assert dict(step.attributes or {}) == {"comity.query_id": "q-1"}
    exported = "".join(s.to_json() for s in captured.spans.get_finished_spans())
    data = captured.metrics.get_metrics_data()
    assert data is not None
    exported += data.to_json()
    assert SELECTOR not in exported
    assert "alice" not in exported


def test_allow_list_keeps_only_known_names_and_plain_values() -> None:
    given: dict[str, object] = {
        "query_id": "6f1c0e4e-3b1a-4a8e-9d51-0d6c1f0a2b3c",
        "rule_codes": ["SERIOUS_CRIME", "PARTICULARITY"],
        "record_count": 3,
        "selector": SELECTOR,
        "comity.selector_value": SELECTOR,
        "node": SELECTOR,  # an allowed name given free text
        "agency": PHONE,
        "outcome": "deny",
        "rpc.system": "grpc",
        "name": "Alice Martin",
        "kind": ["FETCH", "Alice Martin"],
        "step": {"a", 1},
        "bundle_digest": ["x"] * 33,
    }
    assert safe_attributes(given) == {
        "comity.query_id": "6f1c0e4e-3b1a-4a8e-9d51-0d6c1f0a2b3c",
        "comity.rule_codes": ["SERIOUS_CRIME", "PARTICULARITY"],
        "comity.record_count": 3,
        "comity.outcome": "deny",
        "rpc.system": "grpc",
    }
    assert all(name.startswith(("comity.", "rpc.", "error.")) for name in ALLOWED_ATTRIBUTES)


def test_span_marks_errors_by_class_name_only(captured: Captured) -> None:
    with pytest.raises(ValueError), span("gateway.verify_order", query_id="q-2"):
        raise ValueError(f"selector {SELECTOR} is not covered")
    (failed,) = captured.spans.get_finished_spans()
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.status.description == "ValueError"
    assert failed.events == ()
    assert SELECTOR not in failed.to_json()


def test_metric_helpers_record_points(captured: Captured) -> None:
    record_decision("allow")
    record_decision("deny", ["NO_OWN_NATIONALS"])
    record_audit_batch(12, 0.004)
    set_log_size(4096)
    decisions = {p["attributes"]["comity.outcome"] for p in _points(captured, "comity.decisions")}
    assert {"allow", "deny"} <= decisions
    rules = [p["attributes"] for p in _points(captured, "comity.decision.rules")]
    assert {"comity.outcome": "deny", "comity.rule_code": "NO_OWN_NATIONALS"} in rules
    assert _points(captured, "comity.audit.batch.size")[0]["count"] >= 1
    assert _points(captured, "comity.audit.commit.duration")
    assert _points(captured, "comity.audit.log.size")[0]["value"] == 4096


def _points(captured: Captured, name: str) -> list[dict[str, Any]]:
    data = captured.metrics.get_metrics_data()
    assert data is not None
    out: list[dict[str, Any]] = []
    for resource in json.loads(data.to_json())["resource_metrics"]:
        for scope in resource["scope_metrics"]:
            for metric in scope["metrics"]:
                if metric["name"] == name:
                    out.extend(metric["data"]["data_points"])
    return out


# ------------------------------------------------------------------ config


def _section(data: dict[str, Any]) -> Section:
    from pathlib import Path

    return Section(data, source="gateway.toml", base=Path("."), prefix="telemetry")


def test_config_from_section_defaults_and_values() -> None:
    assert TelemetryConfig.from_section(_section({}), service_name="comity-node") == TelemetryConfig(
        service_name="comity-node"
    )
    config = TelemetryConfig.from_section(
        _section(
            {
                "exporter": "otlp",
                "endpoint": "http://collector:4317",
                "insecure": True,
                "sample_ratio": 0.25,
                "log_level": "DEBUG",
                "log_format": "text",
            }
        )
    )
    assert config.exporter == "otlp" and config.endpoint == "http://collector:4317" and config.insecure
    assert config.sample_ratio == 0.25 and config.log_level == "DEBUG" and config.log_format == "text"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"exporter": "jaeger"}, "telemetry.exporter"),
        ({"exporter": "otlp"}, "telemetry.endpoint"),
        ({"sample_ratio": 1.5}, "telemetry.sample_ratio"),
        ({"sample_ratio": -0.1}, "telemetry.sample_ratio"),
        ({"log_format": "xml"}, "telemetry.log_format"),
        ({"log_levle": "DEBUG"}, "telemetry.log_levle"),
    ],
)
def test_config_errors_name_the_field(
    data: dict[str, Any], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    with pytest.raises(ConfigError) as err:
        TelemetryConfig.from_section(_section(data))
    assert err.value.field == field


def test_otlp_endpoint_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    config = TelemetryConfig.from_section(_section({"exporter": "otlp"}))
    assert config.endpoint is None and config.insecure is None


def test_exporters_are_built_from_config() -> None:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    from comity.core.telemetry import _exporters

    assert _exporters(TelemetryConfig()) == (None, None)
    spans, metrics = _exporters(TelemetryConfig(exporter="console"))
    assert isinstance(spans, ConsoleSpanExporter) and isinstance(metrics, ConsoleMetricExporter)
    pytest.importorskip(
        "opentelemetry.exporter.otlp.proto.grpc",
        reason="opentelemetry-exporter-otlp-proto-grpc not installed",
    )
    spans, metrics = _exporters(TelemetryConfig(exporter="otlp", endpoint="http://127.0.0.1:4317"))
    assert type(spans).__name__ == "OTLPSpanExporter" and type(metrics).__name__ == "OTLPMetricExporter"
    spans.shutdown()
    metrics.shutdown()


def test_setup_is_once_per_process(captured: Captured) -> None:
    again = setup_telemetry(TelemetryConfig(exporter="console"))
    assert again is captured.telemetry


async def test_only_trace_context_crosses_the_wire(
    captured: Captured, relay: tuple[grpc.aio.Channel, Relay]
) -> None:
    channel, _ = relay
    # Even where the process's global propagator would send baggage (OpenTelemetry's default).
    installed = propagate.get_global_textmap()
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )
    token = context.attach(baggage.set_baggage("selector", SELECTOR))
    try:
        keys = await channel.unary_unary("/test.Relay/Headers")(b"", timeout=5)
    finally:
        context.detach(token)
        propagate.set_global_textmap(installed)
    assert "traceparent" in keys.decode().split(",")
    assert b"baggage" not in keys


async def test_an_unsampled_trace_makes_no_span_and_still_carries_its_context(
    captured: Captured, relay: tuple[grpc.aio.Channel, Relay]
) -> None:
    channel, _ = relay
    trace_id, span_id = 0x0AF7651916CD43DD8448EB211C80319C, 0x00F067AA0BA902B7
    unsampled = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(0))
    token = context.attach(set_span_in_context(NonRecordingSpan(unsampled)))
    try:
        seen = (await channel.unary_unary("/test.Relay/ForwardTrace")(b"", timeout=5)).decode()
    finally:
        context.detach(token)
    # Two hops on, the node still sees the caller's trace id and the unsampled flag.
    version, seen_trace, _, flags = seen.split("-")
    assert (version, seen_trace, flags) == ("00", f"{trace_id:032x}", "00")
    assert captured.spans.get_finished_spans() == ()
