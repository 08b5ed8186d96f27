"""Every decision of the demo replays identically from the log; tampering is reported."""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from comity.audit.commitments import CommitmentOpening
from comity.audit.events import DecisionEvent, decode_event
from comity.audit.store import LogStore
from comity.core.dsse import payload_digest
from comity.gateway.replay import replay_decision
from comity.gateway.replay_node import SealedOpener
from comity.gateway.replay_run import replay_log
from comity.nodes.schema import SelectorType
from comity.nodes.state import NodeState
from comity.policy.bundle_store import BundleStore, folder_name
from comity.policy.select import load_bundle
from comity.sdk.cli.main import app
from comity.sdk.demo.run import RunningFederation, Scenario, run_scenario, scenarios
from comity.sdk.demo.setup import OrderSpec
from comity.sdk.profile import load_profile
from comity.sdk.query import read_order_file
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def _store(running: RunningFederation) -> LogStore:
    return LogStore.open(f"sqlite:///{running.federation.audit_db}", create=False)


def _bundles(running: RunningFederation) -> BundleStore:
    return BundleStore(running.federation.directory / "data" / "bundles")


async def _run_the_demo(running: RunningFederation) -> None:
    fed = running.federation
    for s in [*scenarios(fed), *_own_person_queries(running)]:
        async with load_profile(fed.profiles[s.agency]).async_client() as client:
            await run_scenario(client, fed, s)


def _own_person_queries(running: RunningFederation) -> list[Scenario]:
    """A fetch and a hit check about one of the Canadian node's own persons, attested as American:
    the node refuses the fetch and answers the hit check as a no-hit (its sealed facts say why)."""
    fed = running.federation
    own = next(p for p in fed.subjects["ca-node"] if p.nationality == "CA" == p.residence)
    base = next(s for s in scenarios(fed) if s.title.startswith("FBI fetches"))
    out = []
    for kind in ("fetch", "hit-check"):
        order = OrderSpec(
            f"REPLAY-OWN-{kind}-{next(_ids)}",
            "us.fbi",
            base.order.offence_code,
            own,
            (SelectorType.EMAIL,),
            ("SUBSCRIBER",),
            nationalities=("US",),
            residences=("US",),
        )
        out.append(
            replace(base, node="ca-node", person=own, kind=kind, categories=("SUBSCRIBER",), order=order)
        )
    return out


_ids = iter(range(10_000))


async def test_every_decision_of_the_demo_replays_identically(running: RunningFederation) -> None:
    await _run_the_demo(running)
    fed = running.federation
    # The orders' envelopes, as a legal officer holds them: their facts are checked too.
    envelopes = [read_order_file(path) for path in fed.orders.values()]
    orders = [(payload_digest(e), pb.LegalOrder.FromString(e.payload)) for e in envelopes]
    store = _store(running)
    states = _node_states(running)
    try:
        replayed = replay_log(store, bundles=_bundles(running), orders=orders, sealed=_opener(states))
    finally:
        store.close()
        for state in states.values():
            state.close()
    assert len(replayed) >= len(scenarios(fed))
    assert {r.logged for r in replayed} == {"ALLOW", "DENY"}
    assert [(r.index, r.kind, r.differences, r.skipped) for r in replayed if not r.identical] == []
    assert all(r.replayed == r.logged for r in replayed)
    # The nodes' decisions too, refusals among them, each saying which facts it took as kept.
    nodes = [r for r in replayed if r.kind == "node_decision"]
    assert {r.logged for r in nodes} == {"ALLOW", "DENY"}
    assert all(any(t.startswith("now=") for t in r.taken) for r in nodes)
    gateway = [r for r in replayed if r.kind == "decision"]
    assert all(any(t.startswith("justification_reused=") for t in r.taken) for r in gateway)
    # The gateway kept the bundle it loaded by digest.
    digest = load_bundle("us-ca-agreement").digest
    assert (fed.directory / "data" / "bundles" / folder_name(digest) / "bundle.toml").is_file()


def _node_states(running: RunningFederation) -> dict[str, NodeState]:
    data = running.federation.directory / "data"
    return {node: NodeState(f"sqlite:///{data / f'{node}.db'}") for node in ("ca-node", "us-node")}


def _opener(states: dict[str, NodeState]) -> SealedOpener:
    return lambda node, query_id, commitment: states[node].open_sealed(query_id, commitment)


async def test_a_node_decision_replays_only_with_the_node_sealed_opening_and_as_it_was(
    running: RunningFederation,
) -> None:
    await _run_the_demo(running)
    store = _store(running)
    states = _node_states(running)
    try:
        without = replay_log(store, bundles=_bundles(running))
        nodes = [r for r in without if r.kind == "node_decision"]
        assert nodes and all(r.skipped and not r.differences for r in nodes)

        def tampered(node: str, query_id: str, commitment: bytes) -> dict[str, Any] | None:
            opened = states[node].open_sealed(query_id, commitment)
            if opened is None:
                return None
            subject = dict(opened["subject"], nationalities=[states_country(node)])
            return dict(opened, subject=subject)

        changed = replay_log(store, bundles=_bundles(running), sealed=tampered)
        # A node's own person in the sealed facts: the node would have refused.
        assert any(r.kind == "node_decision" and r.logged == "ALLOW" and r.differences for r in changed)
        missing = replay_log(store, bundles=_bundles(running), sealed=lambda n, q, c: None)
        assert all("keeps no opening" in r.differences[0] for r in missing if r.kind == "node_decision")
    finally:
        store.close()
        for state in states.values():
            state.close()


def states_country(node: str) -> str:
    return "CA" if node == "ca-node" else "US"


def _first_decision(store: LogStore) -> tuple[int, DecisionEvent]:
    for index, _, data in store.iter_entries(store.tree_size()):
        event = decode_event(data)
        if isinstance(event, DecisionEvent) and event.facts:
            return index, event
    raise AssertionError("no decision in the log")


async def test_a_tampered_fact_an_opening_or_another_bundle_is_reported(running: RunningFederation) -> None:
    await _run_the_demo(running)
    store = _store(running)
    try:
        index, event = _first_decision(store)
        openings = store.openings(index)
    finally:
        store.close()
    bundles = _bundles(running)
    assert replay_decision(index, event, openings, bundles=bundles, counts=(0, 0)).identical

    quota = dict(event.facts, investigator_queries_today=60)
    tampered = replay_decision(
        index, dataclasses.replace(event, facts=quota), openings, bundles=bundles, counts=(0, 0)
    )
    assert any(d.startswith("investigator_queries_today") for d in tampered.differences)

    counted = replay_decision(index, event, openings, bundles=bundles, counts=(60, 60))
    assert "QUOTA" in counted.replayed_rules and not counted.identical

    first = openings[0]
    forged = [CommitmentOpening(first.salt, first.selector_type, first.value + "x"), *openings[1:]]
    opened = replay_decision(index, event, forged, bundles=bundles, counts=(0, 0))
    assert any("does not open" in d for d in opened.differences)

    other = dataclasses.replace(event, bundle_digest=load_bundle("ca-inbound").digest)
    assert not replay_decision(index, other, openings, bundles=bundles, counts=(0, 0)).identical


async def test_the_guides_replay_example_runs_and_replays_every_decision(running: RunningFederation) -> None:
    await _run_the_demo(running)
    doc = GUIDE.read_text(encoding="utf-8")
    example = doc[doc.index("<!-- replay-example -->") :].split("\n$ ", 1)[1].split("\n", 1)[0]
    args = shlex.split(example.replace("DIR", str(running.federation.directory)))
    assert args[:3] == ["comity", "policy", "replay"]
    result = await asyncio.to_thread(CliRunner().invoke, app, args[1:], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    replayed, _, total = last.partition(" of ")
    assert last.endswith("decision(s) replayed identically") and int(replayed) == int(total.split()[0]) > 0
    assert "node_decision" in result.output and "not replayed" not in result.output  # the nodes' too
    # And one entry as JSON.
    result = await asyncio.to_thread(CliRunner().invoke, app, [*args[1:], "--entry", "0", "--json"])
    assert result.exit_code == 0, result.output
