"""End to end over real loopback servers: SDK → gateway → node and back, both directions."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from comity.core import errors
from comity.sdk.demo.run import RunningFederation, Scenario, run_scenario, scenarios
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec, Selector, read_order_file
from comity.sdk.result import RecordView

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _scenario(running: RunningFederation, title_start: str) -> Scenario:
    return next(s for s in scenarios(running.federation) if s.title.startswith(title_start))


async def test_every_demo_scenario_is_decided_as_the_agreement_says(running: RunningFederation) -> None:
    fed = running.federation
    references: dict[str, str] = {}
    for s in scenarios(fed):
        async with load_profile(fed.profiles[s.agency]).async_client() as client:
            reference = references.get(s.order.order_id, "") if s.kind == "fetch" else ""
            outcome = await run_scenario(client, fed, s, hit_reference=reference)
        if s.kind == "hit-check" and outcome.result is not None:
            references[s.order.order_id] = outcome.result.hit_reference
        assert outcome.as_expected, (s.title, outcome.error)


async def test_records_flow_both_ways_and_carry_use_restrictions(running: RunningFederation) -> None:
    fed = running.federation
    us_to_ca = replace(_scenario(running, "FBI fetches"), kind="fetch")
    ca_to_us = _scenario(running, "RCMP fetches")
    async with load_profile(fed.profiles["us.fbi"]).async_client() as us:
        hit = await run_scenario(us, fed, _scenario(running, "FBI asks the Canadian node whether"))
        assert hit.result is not None and hit.result.hit and hit.result.hit_reference
        assert hit.result.records == []
        fetched = await run_scenario(us, fed, us_to_ca, hit_reference=hit.result.hit_reference)
    async with load_profile(fed.profiles["ca.rcmp"]).async_client() as ca:
        back = await run_scenario(ca, fed, ca_to_us)
    for outcome, node in ((fetched, "ca-node"), (back, "us-node")):
        assert outcome.result is not None, outcome.error
        assert outcome.result.node_id == node
        assert outcome.result.records, "the well-known subject has records"
        assert {u.code for u in outcome.result.use_restrictions}
        assert len(outcome.result.receipt.entries) == 3  # the decision, the node decision and the disclosure


async def test_refusal_lists_every_rule_and_carries_a_receipt(running: RunningFederation) -> None:
    fed = running.federation
    async with load_profile(fed.profiles["us.fbi"]).async_client() as us:
        outcome = await run_scenario(us, fed, _scenario(running, "FBI asks about a minor"))
    err = outcome.error
    assert isinstance(err, errors.PermissionDenied)
    assert "SERIOUS_CRIME" in err.rule_codes
    assert err.bundle_digest
    assert err.receipt is not None and len(err.receipt.entries) == 1


async def test_targeting_refusal_reveals_no_reason(running: RunningFederation) -> None:
    fed = running.federation
    async with load_profile(fed.profiles["us.fbi"]).async_client() as us:
        outcome = await run_scenario(
            us, fed, _scenario(running, "FBI asks the Canadian node about a dual national")
        )
    err = outcome.error
    assert isinstance(err, errors.PermissionDenied)
    assert "NO_TARGETING" not in err.rule_codes
    assert all("national" not in v.message.lower() for v in err.violations)


async def test_every_server_answers_health_checks(running: RunningFederation) -> None:
    fed = running.federation
    targets = [(fed.layout.gateway.endpoint, fed.layout.gateway.ca_cert, None)]
    for node in fed.layout.nodes.values():
        targets.append(
            (node.endpoint, node.tls_cert, (fed.layout.gateway.client_key, fed.layout.gateway.client_cert))
        )
    for endpoint, root, client in targets:
        creds = grpc.ssl_channel_credentials(
            root_certificates=root.read_bytes(),
            private_key=client[0].read_bytes() if client else None,
            certificate_chain=client[1].read_bytes() if client else None,
        )
        async with grpc.aio.secure_channel(endpoint, creds) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_streamed_answer_matches_the_unary_one(running: RunningFederation) -> None:
    fed = running.federation
    s = _scenario(running, "RCMP fetches")
    async with load_profile(fed.profiles["ca.rcmp"]).async_client() as ca:
        unary = await run_scenario(ca, fed, s)
        assert unary.result is not None, unary.error
        spec = QuerySpec(
            target_node=s.node,
            selectors=[Selector(t.name, s.person.selectors[t]) for t in s.order.selector_types],
            categories=[c.lower() for c in s.categories],
            kind=s.kind,
            case_reference=s.case_reference,
            facts=s.facts,
            link_to_offence=s.link,
            legal_order=read_order_file(fed.orders[s.order.order_id]),
            time_range=s.time_range,
        )
        streamed = [record async for record in ca.stream(spec)]
    assert [r.record_id for r in streamed] == [r.record_id for r in unary.result.records]
    # Streamed records are the same plain views as a unary query's, field for field.
    assert streamed == list(unary.result.records)
    assert all(isinstance(r, RecordView) for r in streamed)


async def test_concurrent_queries_all_pass_the_witness(running: RunningFederation) -> None:
    """Queries overtaking each other on the way to a node must not trip its witness."""
    fed = running.federation
    s = _scenario(running, "RCMP fetches")
    async with load_profile(fed.profiles["ca.rcmp"]).async_client() as ca:
        outcomes = await asyncio.gather(*(run_scenario(ca, fed, s) for _ in range(24)))
    errors_seen = [o.error for o in outcomes if o.result is None]
    assert errors_seen == []
    witnessed = await running.gateway.router.witness_state("us-node")
    assert witnessed >= 24


async def test_a_query_without_a_time_range_is_told_to_give_one(running: RunningFederation) -> None:
    s = replace(_scenario(running, "FBI asks the Canadian node whether"), case_reference="FBI-2026-TR-0001")
    fed = running.federation
    order = fed.orders.get(s.order.order_id) or fed.sign_order(s.order, now=datetime.now(UTC))
    spec = QuerySpec(
        target_node=s.node,
        selectors=[Selector(t.name, s.person.selectors[t]) for t in s.order.selector_types],
        categories=["subscriber"],
        kind="hit-check",
        case_reference=s.case_reference,
        facts=s.facts,
        link_to_offence=s.link,
        legal_order=read_order_file(order),
    )
    async with load_profile(fed.profiles["us.fbi"]).async_client() as client:
        with pytest.raises(errors.PermissionDenied) as refused:
            await client.query(spec)
    (tiers,) = [v for v in refused.value.violations if v.code == "DATA_CATEGORY_TIERS"]
    assert "time range (start and end)" in tiers.message
