"""One demo query over the real servers is one trace: SDK → gateway → node, with no personal data.

The servers and clients install the interceptors themselves; this shows that nothing between
the SDK and the node drops the trace context, that each pipeline step has its span, and that
the trace holds no selector value or name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from comity.sdk.demo.run import run_scenario, running_federation, scenarios
from comity.sdk.demo.setup import build_demo_federation
from comity.sdk.profile import load_profile

if TYPE_CHECKING:
    from conftest import Captured


def _service(span: ReadableSpan) -> str:
    return str((span.attributes or {}).get("rpc.service", ""))


async def test_demo_query_is_one_trace_from_sdk_to_node(captured: Captured, tmp_path: Path) -> None:
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

    steps = {s.name for s in trace}
    assert {"gateway.verify_query", "gateway.policy", "gateway.audit_append"} <= steps
    assert {"node.verify_order", "node.witness", "node.policy", "node.hit_check"} <= steps

    exported = "".join(s.to_json() for s in spans)
    data = captured.metrics.get_metrics_data()
    assert data is not None
    exported += data.to_json()
    for value in scenario.person.selectors.values():
        assert value not in exported
    assert scenario.person.name not in exported
