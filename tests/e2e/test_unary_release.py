"""A unary answer the node's signatures do not cover is refused before it is logged or released.

A two-country federation runs on loopback. In front of the Canadian node stands a relay on the
node's federation endpoint (its TLS certificate and key; the gateway's client certificate towards
the real node) that passes everything through, except that a test can alter the node's answer
to ``Execute`` on its way to the gateway: take its signed decision away, re-sign its statement
with a key the federation does not list, change or drop a record, flip the hit, change a
private hit check's evaluation. Each is refused with its check code; the investigator gets the
refusal and no record, and the gateway's log holds the query's ``decision``, then ``failed``
under that check code, and no ``disclosed``; what the node really signed reaches the log from its
outbox afterwards.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from relays import Chunks, Relay, node_relay, relayed_federation
from served import wait_for

from comity.core import errors
from comity.core.dsse import PAYLOAD_NODE_STATEMENT, sign_envelope
from comity.core.keys import SigningKey
from comity.sdk.client import AsyncClient
from comity.sdk.demo.run import RunningFederation, Scenario, running_federation, scenario_spec, scenarios
from comity.sdk.demo.setup import DemoFederation
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")

NODE = "ca-node"
EXECUTE = "/comity.v1.DataNode/Execute"
Change = Callable[[pb.QueryResult], None]


@dataclass
class _World:
    running: RunningFederation
    relay: Relay
    hit_reference: str = ""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[_World]:
    fed, endpoint, port = relayed_federation(
        Path(tmp_path_factory.mktemp("unary-release")), node=NODE, people=20, seed=11
    )
    async with (
        node_relay(fed, node=NODE, endpoint=endpoint, port=port) as relay,
        running_federation(fed) as running,
    ):
        world = _World(running, relay)
        async with _client(world) as client:
            hit = await client.query(_hit_check(world))
        assert hit.hit and hit.hit_reference
        world.hit_reference = hit.hit_reference
        yield world


@pytest.fixture(autouse=True)
def _relay_passes(world: _World) -> None:
    world.relay.reset()


def _client(world: _World) -> AsyncClient:
    return load_profile(world.running.federation.profiles["us.fbi"]).async_client()


def _scenario(fed: DemoFederation, title: str) -> Scenario:
    s = next(x for x in scenarios(fed) if x.title.startswith(title))
    assert s.node == NODE
    return s


def _hit_check(world: _World, *, kind: str = "hit-check") -> QuerySpec:
    fed = world.running.federation
    s = _scenario(fed, "FBI asks the Canadian node whether")
    assert s.kind == "hit-check"
    return replace(scenario_spec(fed, s), kind=kind, query_id=str(uuid.uuid4()))


def _fetch(world: _World) -> QuerySpec:
    fed = world.running.federation
    s = _scenario(fed, "FBI fetches the suspect's subscriber and connection records")
    return replace(scenario_spec(fed, s, hit_reference=world.hit_reference), query_id=str(uuid.uuid4()))


def _alter(world: _World, change: Change) -> None:
    def answer(method: str, data: bytes) -> bytes:
        if method != EXECUTE:
            return data
        result = pb.QueryResult.FromString(data)
        change(result)
        return result.SerializeToString()

    world.relay.answer = answer


def _entries(world: _World, query_id: str) -> list[dict[str, Any]]:
    """The gateway's own entries of ``query_id`` in its log, in order (the node's are left out)."""
    store = world.running.gateway.ledger.log.store
    entries = [json.loads(e) for e in store.entries(0, store.tree_size())]
    mine = ("decision", "disclosed", "failed")
    return [e for e in entries if e.get("query_id") == query_id and e["kind"] in mine]


def _refused_and_logged(world: _World, spec: QuerySpec, err: errors.ComityError, check: str) -> None:
    """``err`` is the refusal ``check`` (what went wrong, that nothing was released, what to do),
    with the receipt of its failure, and the log holds ``decision`` then ``failed`` under ``check``."""
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.check_codes == [check], err.message
    assert NODE in err.message and "nothing was released" in err.message
    assert "operator" in err.message
    assert "Traceback" not in err.message
    entries = _entries(world, spec.query_id)
    assert [e["kind"] for e in entries] == ["decision", "failed"]
    assert entries[-1]["reason"] == check
    assert err.receipt is not None
    assert json.loads(err.receipt.entries[-1].entry)["kind"] == "failed"


# ---------------------------------------------------------------- the normal case


async def test_an_answer_as_the_node_signed_it_is_logged_and_released(world: _World) -> None:
    spec = _fetch(world)
    async with _client(world) as client:
        result = await client.query(spec)
    assert len(result.records) >= 2
    entries = _entries(world, spec.query_id)
    assert [e["kind"] for e in entries] == ["decision", "disclosed"]
    assert entries[-1]["record_count"] == len(result.records)


async def test_a_hit_check_as_the_node_signed_it_is_logged_and_released(world: _World) -> None:
    spec = _hit_check(world)
    async with _client(world) as client:
        result = await client.query(spec)
    assert result.hit and not result.records
    assert [e["kind"] for e in _entries(world, spec.query_id)] == ["decision", "disclosed"]


# ---------------------------------------------------------------- the node's answer fails at the gateway


def _no_decision(result: pb.QueryResult) -> None:
    result.ClearField("node_decision")


def _no_statement(result: pb.QueryResult) -> None:
    result.receipt.ClearField("node_statement")


def _resigned(result: pb.QueryResult) -> None:
    foreign = SigningKey.generate(NODE)  # the node's id, another key
    statement = result.receipt.node_statement
    statement.CopyFrom(sign_envelope(PAYLOAD_NODE_STATEMENT, statement.payload, foreign))


def _record_altered(result: pb.QueryResult) -> None:
    record = result.records[0]
    key = next(iter(record.fields))
    record.fields[key] += "x"


def _record_dropped(result: pb.QueryResult) -> None:
    del result.records[-1]


def _hit_flipped(result: pb.QueryResult) -> None:
    result.hit = not result.hit


def _node_renamed(result: pb.QueryResult) -> None:
    result.node_id = "us-node"


def _restrictions_dropped(result: pb.QueryResult) -> None:
    assert result.use_restrictions, "the scenario's answer carries use restrictions"
    result.ClearField("use_restrictions")


FETCH_CHANGES = [
    (_no_decision, "NODE_ANSWER_UNSIGNED", "carries no node decision"),
    (_no_statement, "NODE_ANSWER_UNSIGNED", "carries no node statement"),
    (_resigned, "NODE_ANSWER_KEY", "does not verify"),
    (_record_altered, "NODE_ANSWER_MISMATCH", "records digest differs"),
    (_record_dropped, "NODE_ANSWER_MISMATCH", "record(s) arrived, the statement counts"),
    (_hit_flipped, "NODE_ANSWER_MISMATCH", "disagree about the hit"),
    (_node_renamed, "NODE_ANSWER_MISMATCH", "names another node"),
    (_restrictions_dropped, "NODE_ANSWER_MISMATCH", "use restrictions differ"),
]


@pytest.mark.parametrize(
    ("change", "check", "said"), FETCH_CHANGES, ids=[c.__name__.strip("_") for c, _, _ in FETCH_CHANGES]
)
async def test_a_fetch_answer_its_signatures_do_not_cover_releases_nothing(
    world: _World, change: Change, check: str, said: str
) -> None:
    _alter(world, change)
    spec = _fetch(world)
    async with _client(world) as client:
        with pytest.raises(errors.FailedPrecondition) as refused:
            await client.query(spec)
    assert said in refused.value.message
    _refused_and_logged(world, spec, refused.value, check)


@pytest.mark.parametrize(
    ("change", "check"),
    [(_no_decision, "NODE_ANSWER_UNSIGNED"), (_hit_flipped, "NODE_ANSWER_MISMATCH")],
    ids=["no_decision", "hit_flipped"],
)
async def test_a_hit_check_answer_its_signatures_do_not_cover_releases_nothing(
    world: _World, change: Change, check: str
) -> None:
    _alter(world, change)
    spec = _hit_check(world)
    async with _client(world) as client:
        with pytest.raises(errors.FailedPrecondition) as refused:
            await client.query(spec)
    _refused_and_logged(world, spec, refused.value, check)


def _evaluation_changed(result: pb.QueryResult) -> None:
    proof = result.private_evaluation.proof
    result.private_evaluation.proof = bytes([proof[0] ^ 1]) + proof[1:]


@pytest.mark.parametrize(
    ("change", "check"),
    [(_no_decision, "NODE_ANSWER_UNSIGNED"), (_evaluation_changed, "NODE_ANSWER_MISMATCH")],
    ids=["no_decision", "evaluation_changed"],
)
async def test_a_private_hit_check_answer_its_signatures_do_not_cover_releases_nothing(
    world: _World, change: Change, check: str
) -> None:
    _alter(world, change)
    spec = _hit_check(world, kind="private-hit-check")
    async with _client(world) as client:
        with pytest.raises(errors.FailedPrecondition) as refused:
            await client.private_hit_check(spec)
    _refused_and_logged(world, spec, refused.value, check)


async def test_a_stream_summary_without_the_nodes_decision_releases_nothing(world: _World) -> None:
    async def undecided(stream: Chunks, context: grpc.aio.ServicerContext[Any, Any]) -> Chunks:
        async for chunk in stream:
            if chunk.HasField("summary"):
                chunk.summary.ClearField("node_decision")
            yield chunk

    world.relay.alter = undecided
    spec = _fetch(world)
    seen = []
    async with _client(world) as client:
        with pytest.raises(errors.FailedPrecondition) as refused:
            async for record in client.stream(spec):
                seen.append(record)
    assert seen == []
    _refused_and_logged(world, spec, refused.value, "NODE_ANSWER_UNSIGNED")


async def test_what_the_node_really_signed_still_reaches_the_log_beside_the_failure(world: _World) -> None:
    # The relay changed a record on its way: the node's outbox holds its genuine decision and
    # statement, and recovery logs them (a node_decision entry) after the failure.
    _alter(world, _record_altered)
    spec = _fetch(world)
    async with _client(world) as client:
        with pytest.raises(errors.FailedPrecondition):
            await client.query(spec)
    world.relay.reset()
    store = world.running.gateway.ledger.log.store

    def decisions() -> list[dict[str, Any]]:
        entries = [json.loads(e) for e in store.entries(0, store.tree_size())]
        return [e for e in entries if e.get("query_id") == spec.query_id and e["kind"] == "node_decision"]

    await asyncio.to_thread(wait_for, lambda: bool(decisions()), "recovery logging the node's decision")
    (logged,) = decisions()
    assert logged["decision"] == "ALLOW" and logged["node_statement"]
    statement = pb.NodeStatement.FromString(
        pb.Envelope.FromString(bytes.fromhex(logged["node_statement"])).payload
    )
    assert statement.query_id == spec.query_id and statement.record_count >= 2
    assert [e["kind"] for e in _entries(world, spec.query_id)] == ["decision", "failed"]
