"""One demo query over the real servers is one trace: SDK → gateway → node, with no personal data.

The servers do not install the interceptors themselves yet, so this test adds them where every
channel and server is made (``grpc.aio.secure_channel`` and ``grpc.aio.server``). It shows that
nothing between the SDK and the node drops the trace context, and what the trace holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from comity.core.telemetry import TelemetryServerInterceptor, client_interceptors
from comity.sdk.demo.run import run_scenario, running_federation, scenarios
from comity.sdk.demo.setup import build_demo_federation
from comity.sdk.profile import load_profile

if TYPE_CHECKING:
    from conftest import Captured


@pytest.fixture
def instrumented(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    make_server, make_channel = grpc.aio.server, grpc.aio.secure_channel

    def server(*args: Any, **kwargs: Any) -> grpc.aio.Server:
        kwargs.setdefault("interceptors", [TelemetryServerInterceptor()])
        return make_server(*args, **kwargs)

    def secure_channel(*args: Any, **kwargs: Any) -> grpc.aio.Channel:
        kwargs.setdefault("interceptors", client_interceptors())
        return make_channel(*args, **kwargs)

    monkeypatch.setattr(grpc.aio, "server", server)
    monkeypatch.setattr(grpc.aio, "secure_channel", secure_channel)
    yield


def _service(span: ReadableSpan) -> str:
    return str((span.attributes or {}).get("rpc.service", ""))


async def test_demo_query_is_one_trace_from_sdk_to_node(
    captured: Captured, instrumented: None, tmp_path: Path
) -> None:
    fed = build_demo_federation(tmp_path, people=20, seed=11)
    scenario = next(s for s in scenarios(fed) if s.expect_allowed and s.kind == "hit-check")
    async with running_federation(fed):
        captured.spans.clear()
        async with load_profile(fed.profiles[scenario.agency]).async_client() as client:
            outcome = await run_scenario(client, fed, scenario)
    assert outcome.as_expected, outcome.error
    spans = captured.spans.get_finished_spans()
    roots = [s for s in spans if s.parent is None and s.kind == SpanKind.CLIENT]
    sdk = next(s for s in roots if _service(s) == "comity.v1.Gateway")
    trace = [s for s in spans if s.context.trace_id == sdk.context.trace_id]
    by_id = {s.context.span_id: s for s in trace}

    def hops(kind: SpanKind, service: str) -> list[ReadableSpan]:
        return [s for s in trace if s.kind == kind and _service(s) == service]

    (gateway,) = hops(SpanKind.SERVER, "comity.v1.Gateway")
    node_calls = hops(SpanKind.CLIENT, "comity.v1.DataNode")
    node_serves = hops(SpanKind.SERVER, "comity.v1.DataNode")
    assert node_calls and node_serves
    assert gateway.parent is not None and gateway.parent.span_id == sdk.context.span_id
    for call in node_calls:
        # The gateway's call to the node happens inside its handling of the investigator's call.
        ancestor = call
        while ancestor.parent is not None and ancestor.parent.span_id in by_id:
            ancestor = by_id[ancestor.parent.span_id]
        assert ancestor is sdk
    for serve in node_serves:
        assert serve.parent is not None and serve.parent.span_id in {c.context.span_id for c in node_calls}

    exported = "".join(s.to_json() for s in spans)
    data = captured.metrics.get_metrics_data()
    assert data is not None
    exported += data.to_json()
    for value in scenario.person.selectors.values():
        assert value not in exported
    assert scenario.person.name not in exported
