"""A streamed answer releases no record that is not logged and verified.

A two-country federation runs on loopback; the Canadian node streams one record per batch. In front of
it stands a relay on the node's federation endpoint (its TLS certificate and key; the gateway's
client certificate towards the real node) that passes everything through, except that a test
can make it cut the node's stream after its first batch, or re-sign the node's closing statement
with a key the federation does not list. In front of the gateway, a stand-in gateway (the
gateway's certificate; the investigator's token passed on) can alter or drop a record batch on
its way to the SDK.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from relays import Chunks, Relay, node_relay, relayed_federation

from comity.audit.events import decode_event
from comity.core import errors
from comity.core.digests import records_digest
from comity.core.dsse import PAYLOAD_NODE_STATEMENT, sign_envelope
from comity.core.keys import SigningKey
from comity.core.tls import gateway_server_credentials
from comity.sdk.demo.run import (
    RunningFederation,
    Scenario,
    run_scenario,
    running_federation,
    scenario_spec,
    scenarios,
)
from comity.sdk.demo.setup import DemoFederation
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec
from comity.sdk.result import RecordView, ResponseTampered
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")

NODE = "ca-node"


@dataclass
class _World:
    running: RunningFederation
    node_relay: Relay
    gateway_relay: Relay
    stand_in: str  # the stand-in gateway's address
    hit_reference: str = ""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[_World]:
    # One record per batch, so that a two-record answer streams two batches.
    fed, endpoint, port = relayed_federation(
        Path(tmp_path_factory.mktemp("stream-release")), node=NODE, people=20, seed=11, stream_batch=1
    )
    g = fed.layout.gateway
    to_gateway = grpc.aio.secure_channel(
        g.endpoint, grpc.ssl_channel_credentials(root_certificates=g.ca_cert.read_bytes())
    )
    gateway_relay = Relay(to_gateway, "/comity.v1.Gateway/SubmitStream", pb.SubmitRequest)
    gateway_side = grpc.aio.server()
    gateway_side.add_generic_rpc_handlers((gateway_relay,))
    stand_in_port = gateway_side.add_secure_port(
        "127.0.0.1:0", gateway_server_credentials(g.tls_cert, g.tls_key)
    )
    await gateway_side.start()
    try:
        async with (
            node_relay(fed, node=NODE, endpoint=endpoint, port=port) as relay,
            running_federation(fed) as running,
        ):
            world = _World(running, relay, gateway_relay, f"127.0.0.1:{stand_in_port}")
            async with _client(world) as client:
                hit = await run_scenario(client, fed, _scenario(fed, "FBI asks the Canadian node whether"))
            assert hit.result is not None and hit.result.hit, hit.error
            world.hit_reference = hit.result.hit_reference
            yield world
    finally:
        await gateway_side.stop(0)
        await to_gateway.close()


@pytest.fixture(autouse=True)
def _relays_pass(world: _World) -> None:
    world.node_relay.reset()
    world.gateway_relay.reset()


def _scenario(fed: DemoFederation, title: str) -> Scenario:
    s = next(x for x in scenarios(fed) if x.title.startswith(title))
    assert s.node == NODE
    return s


def _spec(world: _World) -> QuerySpec:
    fed = world.running.federation
    s = _scenario(fed, "FBI fetches the suspect's subscriber and connection records")
    return replace(scenario_spec(fed, s, hit_reference=world.hit_reference), query_id=str(uuid.uuid4()))


def _kinds(world: _World, query_id: str) -> list[str]:
    """The gateway's own entries of ``query_id`` in its log, in order."""
    store = world.running.gateway.ledger.log.store
    entries = [json.loads(e) for e in store.entries(0, store.tree_size())]
    mine = ("decision", "disclosed", "failed")
    return [e["kind"] for e in entries if e.get("query_id") == query_id and e["kind"] in mine]


def _client(world: _World, *, through: str = "") -> Any:
    profile = load_profile(world.running.federation.profiles["us.fbi"])
    if through:
        profile = replace(profile, address=through, replica_addresses=(), resubmissions=0)
    return profile.async_client()


async def _collect(world: _World, spec: QuerySpec, seen: list[RecordView], *, through: str = "") -> None:
    async with _client(world, through=through) as client:
        async for record in client.stream(spec):
            seen.append(record)


def _collect_blocking(world: _World, spec: QuerySpec, seen: list[RecordView], *, through: str) -> None:
    profile = load_profile(world.running.federation.profiles["us.fbi"])
    profile = replace(profile, address=through, replica_addresses=(), resubmissions=0)
    with profile.client() as client:
        for record in client.stream(spec):
            seen.append(record)


# ---------------------------------------------------------------- the normal case


async def test_the_summary_comes_first_and_the_disclosure_is_logged_before_the_first_record(
    world: _World,
) -> None:
    spec = _spec(world)
    seen: list[RecordView] = []
    logged_at_first: list[str] = []
    async with _client(world) as client:
        async for record in client.stream(spec):
            if not seen:
                logged_at_first = _kinds(world, spec.query_id)
            seen.append(record)
    assert len(seen) >= 2, "the scenario's subject needs two records (two batches) for this test"
    assert logged_at_first == ["decision", "disclosed"]


async def test_on_the_wire_the_summary_is_first_and_lists_every_batch_digest(world: _World) -> None:
    chunks: list[pb.ResultChunk] = []

    async def kept(stream: Chunks, context: grpc.aio.ServicerContext[Any, Any]) -> Chunks:
        async for chunk in stream:
            chunks.append(chunk)
            yield chunk

    world.gateway_relay.alter = kept
    seen: list[RecordView] = []
    await _collect(world, _spec(world), seen, through=world.stand_in)
    assert chunks[0].HasField("summary") and all(c.HasField("records") for c in chunks[1:])
    statement = pb.NodeStatement.FromString(chunks[0].summary.receipt.node_statement.payload)
    batches = [c.records.records for c in chunks[1:]]
    assert len(batches) == len(seen) >= 2  # one record per batch
    assert list(statement.batch_digests) == [records_digest(b) for b in batches]
    assert statement.record_count == len(seen)


# ---------------------------------------------------------------- the node's answer fails at the gateway


async def test_a_closing_signature_the_federation_does_not_list_releases_no_record(world: _World) -> None:
    foreign = SigningKey.generate(NODE)  # the node's id, another key

    async def resigned(stream: Chunks, context: grpc.aio.ServicerContext[Any, Any]) -> Chunks:
        async for chunk in stream:
            if chunk.HasField("summary"):
                statement = chunk.summary.receipt.node_statement
                statement.CopyFrom(sign_envelope(PAYLOAD_NODE_STATEMENT, statement.payload, foreign))
            yield chunk

    world.node_relay.alter = resigned
    spec, seen = _spec(world), []
    with pytest.raises(errors.FailedPrecondition) as refused:
        await _collect(world, spec, seen)
    assert seen == []
    assert refused.value.check_codes == ["NODE_ANSWER_KEY"], refused.value.message
    assert "nothing was released" in refused.value.message
    assert _kinds(world, spec.query_id) == ["decision", "failed"]


async def test_a_stream_the_node_cuts_after_its_first_batch_releases_no_record(world: _World) -> None:
    async def cut(stream: Chunks, context: grpc.aio.ServicerContext[Any, Any]) -> Chunks:
        async for chunk in stream:
            yield chunk
            await context.abort(grpc.StatusCode.UNAVAILABLE, "Socket closed")

    world.node_relay.alter = cut
    spec, seen = _spec(world), []
    with pytest.raises(errors.Unavailable) as refused:
        await _collect(world, spec, seen)
    assert seen == []
    assert NODE in refused.value.message
    assert _kinds(world, spec.query_id) == ["decision", "failed"]


async def test_a_batch_that_differs_from_the_signed_digest_releases_no_record(world: _World) -> None:
    async def altered(stream: Chunks, context: grpc.aio.ServicerContext[Any, Any]) -> Chunks:
        batches = 0
        async for chunk in stream:
            if chunk.HasField("records"):
                batches += 1
                if batches == 2:
                    chunk.records.records[0].record_id += "x"
            yield chunk

    world.node_relay.alter = altered
    spec, seen = _spec(world), []
    with pytest.raises(errors.FailedPrecondition) as refused:
        await _collect(world, spec, seen)
    assert seen == []
    assert refused.value.check_codes == ["NODE_ANSWER_MISMATCH"], refused.value.message
    assert "batch" in refused.value.message
    assert _kinds(world, spec.query_id) == ["decision", "failed"]


async def test_a_node_that_streams_past_the_querys_max_records_releases_no_record(world: _World) -> None:
    async def doubled(stream: Chunks, context: grpc.aio.ServicerContext[Any, Any]) -> Chunks:
        async for chunk in stream:
            yield chunk
            if chunk.HasField("records"):
                yield chunk  # each batch twice: more than the node counted, or was asked for

    world.node_relay.alter = doubled
    spec, seen = _spec(world), []
    with pytest.raises(errors.ResourceExhausted) as refused:
        await _collect(world, replace(spec, max_records=1), seen)
    assert seen == []
    assert refused.value.check_codes == ["NODE_ANSWER_LIMIT"], refused.value.message
    assert _kinds(world, spec.query_id) == ["decision", "failed"]


# ---------------------------------------------------------------- between the gateway and the SDK


@pytest.mark.parametrize("blocking", [False, True], ids=["AsyncClient", "Client"])
async def test_the_sdk_yields_no_record_of_a_batch_altered_after_the_gateway(
    world: _World, blocking: bool
) -> None:
    async def altered(stream: Chunks, context: grpc.aio.ServicerContext[Any, Any]) -> Chunks:
        batches = 0
        async for chunk in stream:
            if chunk.HasField("records"):
                batches += 1
                if batches == 2:
                    key = next(iter(chunk.records.records[0].fields))
                    chunk.records.records[0].fields[key] += "x"
            yield chunk

    world.gateway_relay.alter = altered
    seen: list[RecordView] = []
    with pytest.raises(ResponseTampered) as tampered:
        if blocking:
            await asyncio.to_thread(_collect_blocking, world, _spec(world), seen, through=world.stand_in)
        else:
            await _collect(world, _spec(world), seen, through=world.stand_in)
    assert len(seen) == 1, "the first batch (one record) verified; none of the second may be yielded"
    assert "record batch 2" in tampered.value.message


async def test_the_sdk_refuses_a_stream_that_lost_a_batch(world: _World) -> None:
    async def dropped(stream: Chunks, context: grpc.aio.ServicerContext[Any, Any]) -> Chunks:
        kept: list[pb.ResultChunk] = [chunk async for chunk in stream]
        for chunk in kept[:-1]:
            yield chunk

    world.gateway_relay.alter = dropped
    seen: list[RecordView] = []
    with pytest.raises(ResponseTampered) as tampered:
        await _collect(world, _spec(world), seen, through=world.stand_in)
    assert "the stream ended after" in tampered.value.message


async def test_a_stream_that_broke_after_its_summary_is_not_sent_again(world: _World) -> None:
    async def broken(stream: Chunks, context: grpc.aio.ServicerContext[Any, Any]) -> Chunks:
        kept: list[pb.ResultChunk] = [chunk async for chunk in stream]
        for chunk in kept[:2]:  # the summary and the first batch
            yield chunk
        await context.abort(grpc.StatusCode.UNAVAILABLE, "Socket closed")

    world.gateway_relay.alter = broken
    seen: list[RecordView] = []
    profile = load_profile(world.running.federation.profiles["us.fbi"])
    real = profile.address
    profile = replace(profile, address=world.stand_in, replica_addresses=(real,))
    spec = _spec(world)
    with pytest.raises(errors.Unavailable) as caught:
        async with profile.async_client() as client:
            async for record in client.stream(spec):
                seen.append(record)
    assert len(seen) == 1
    assert "broke after 1 record(s)" in caught.value.message and "verified" in caught.value.message
    assert [a.address for a in caught.value.attempts] == [world.stand_in]
    assert _kinds(world, spec.query_id) == ["decision", "disclosed"]


async def test_the_stream_holds_the_verified_answer_and_its_receipt_from_the_summary_on(
    world: _World,
) -> None:
    spec = _spec(world)
    async with _client(world) as client:
        stream = client.stream(spec)
        assert stream.result is None and not stream.complete
        seen: list[RecordView] = []
        async for record in stream:
            if not seen:  # the summary came first: the answer is known before any record is used
                assert stream.result is not None and not stream.complete
            seen.append(record)
        assert stream.complete
        result = stream.result
        assert result is not None and result.query_id == spec.query_id and result.records == []
        assert result.verified is not None and result.attempts[-1].query_id == spec.query_id
        kinds = [decode_event(e.entry).kind for e in result.receipt.entries]
        assert kinds == ["decision", "node_decision", "disclosed"], kinds
        assert len(seen) >= 2
