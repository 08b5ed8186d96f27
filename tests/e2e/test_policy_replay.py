"""Every decision of the demo replays identically from the log; tampering is reported."""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comity.audit.commitments import CommitmentOpening
from comity.audit.events import DecisionEvent, decode_event
from comity.audit.store import LogStore
from comity.core.dsse import payload_digest
from comity.gateway.replay import replay_decision, replay_log
from comity.policy.bundle_store import BundleStore, folder_name
from comity.policy.select import load_bundle
from comity.sdk.cli.main import app
from comity.sdk.demo.run import RunningFederation, run_scenario, scenarios
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
    for s in scenarios(fed):
        async with load_profile(fed.profiles[s.agency]).async_client() as client:
            await run_scenario(client, fed, s)


async def test_every_decision_of_the_demo_replays_identically(running: RunningFederation) -> None:
    await _run_the_demo(running)
    fed = running.federation
    # The orders' envelopes, as a legal officer holds them: their facts are checked too.
    envelopes = [read_order_file(path) for path in fed.orders.values()]
    orders = [(payload_digest(e), pb.LegalOrder.FromString(e.payload)) for e in envelopes]
    store = _store(running)
    try:
        replayed = replay_log(store, bundles=_bundles(running), orders=orders)
    finally:
        store.close()
    assert len(replayed) >= len(scenarios(fed))
    assert {r.logged for r in replayed} == {"ALLOW", "DENY"}
    assert [r.differences for r in replayed if not r.identical] == []
    assert all(r.replayed == r.logged for r in replayed)
    # The gateway kept the bundle it loaded by digest.
    digest = load_bundle("us-ca-agreement").digest
    assert (fed.directory / "data" / "bundles" / folder_name(digest) / "bundle.toml").is_file()


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
    # And one entry as JSON.
    result = await asyncio.to_thread(CliRunner().invoke, app, [*args[1:], "--entry", "0", "--json"])
    assert result.exit_code == 0, result.output
