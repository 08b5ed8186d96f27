"""Node decisions in the log: the node's rules and bundle, signed by the node, with a receipt."""

from __future__ import annotations

from pathlib import Path

import pytest

from comity.audit.events import DecisionEvent, DisclosedEvent, Event, NodeDecisionEvent, decode_event
from comity.audit.store import LogStore
from comity.core import errors
from comity.core.dsse import PAYLOAD_NODE_DECISION, verify_envelope
from comity.core.federation import Federation
from comity.nodes.outbox import Outbox
from comity.policy.select import load_bundle
from comity.sdk.demo.run import run_scenario, running_federation, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.profile import load_profile
from comity.sdk.receipts import FederationTrust, ReceiptInvalid, verify_refusal
from comity.v1 import comity_pb2 as pb

# The Canadian node's inbound policy allows 20 queries per investigator a day, the agreement 50.
_NODE_QUOTA = 20


def _logged(fed: DemoFederation) -> list[Event]:
    store = LogStore.open(f"sqlite:///{fed.audit_db}", create=False)
    try:
        return [decode_event(data) for _, _, data in store.iter_entries(store.tree_size())]
    finally:
        store.close()


async def test_node_allowance_and_refusal_reach_the_log_with_rules_bundle_and_receipt(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=10, seed=5)
    hit_check = next(s for s in scenarios(fed) if s.title.startswith("FBI asks the Canadian node whether"))
    ca_bundle = load_bundle("ca-inbound").digest
    async with running_federation(fed), load_profile(fed.profiles["us.fbi"]).async_client() as client:
        allowed = [await run_scenario(client, fed, hit_check) for _ in range(_NODE_QUOTA)]
        refused = await run_scenario(client, fed, hit_check)
    assert all(o.result is not None for o in allowed), [o.error for o in allowed if o.error]
    first = allowed[0].result
    assert first is not None and first.receipt.HasField("node_decision")

    err = refused.error
    assert isinstance(err, errors.PermissionDenied), err
    assert "QUOTA" in err.rule_codes and "ca-node" in err.message
    # The receipt (checked by the SDK already) proves the gateway's allowance and the node's refusal.
    assert err.receipt is not None and err.node_decision is None
    assert isinstance(err.receipt, pb.Receipt)
    trust = FederationTrust(Federation.load(fed.directory / "federation.toml"))
    verified = verify_refusal(err.receipt, trust, query_digest=err.receipt.query_digest)
    refusal = verified.entries.node_decision
    assert verified.outcome == "refused by node"
    assert refusal is not None and refusal.rule_codes == ("QUOTA",)
    with pytest.raises(ReceiptInvalid):
        verify_refusal(err.receipt, trust, query_digest=b"\1" * 32)

    logged = _logged(fed)
    node_decisions = [e for e in logged if isinstance(e, NodeDecisionEvent)]
    assert [e.decision for e in node_decisions] == ["ALLOW"] * _NODE_QUOTA + ["DENY"]
    assert {e.bundle_digest for e in node_decisions} == {ca_bundle}
    assert all(e.node == "ca-node" for e in node_decisions)
    assert node_decisions[-1].rule_codes == ("QUOTA",)
    assert all(e.node_statement for e in node_decisions[:-1]) and not node_decisions[-1].node_statement
    # Each is the node's own signed word, verifiable with the federation's node key.
    keys = Federation.load(fed.directory / "federation.toml").node_keys()
    for e in node_decisions:
        envelope = pb.Envelope.FromString(bytes.fromhex(e.node_decision))
        payload, signer = verify_envelope(envelope, payload_type=PAYLOAD_NODE_DECISION, keys=keys, what="x")
        assert signer is keys["ca-node"]
        assert pb.NodeDecision.FromString(payload).query_digest.hex() == e.query_digest
    # The trail per query: decision, node decision, then a disclosure for allowed ones; no failure.
    kinds = [e.kind for e in logged]
    assert "failed" not in kinds
    assert sum(isinstance(e, DecisionEvent) for e in logged) == _NODE_QUOTA + 1
    assert sum(isinstance(e, DisclosedEvent) for e in logged) == _NODE_QUOTA


async def test_the_node_keeps_what_it_signed_in_its_outbox(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=10, seed=5)
    hit_check = next(s for s in scenarios(fed) if s.title.startswith("FBI asks the Canadian node whether"))
    async with running_federation(fed), load_profile(fed.profiles["us.fbi"]).async_client() as client:
        outcome = await run_scenario(client, fed, hit_check)
    assert outcome.result is not None
    outbox = Outbox(fed.directory / "data" / "ca-node.db")
    try:
        items = outbox.pending()
    finally:
        outbox.close()
    assert len(items) == 1
    assert items[0].node_decision == outcome.result.receipt.node_decision
    assert items[0].node_statement == outcome.result.receipt.node_statement
