"""A node that is down: the gateway answers UNAVAILABLE within the deadline and logs the failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from comity.audit.events import FailedEvent, decode_event
from comity.audit.receipt_trust import FederationTrust
from comity.audit.store import LogStore
from comity.core import errors
from comity.core.federation import Federation
from comity.sdk.demo.run import run_scenario, running_federation, scenarios
from comity.sdk.demo.setup import build_demo_federation
from comity.sdk.profile import load_profile
from comity.sdk.receipts import verify_refusal
from comity.v1 import comity_pb2 as pb


async def test_query_to_a_stopped_node_is_unavailable_and_logged(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=10, seed=3)
    rcmp = next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))
    async with running_federation(fed) as running:
        us_node = next(h for h in running.stops if h.port == fed.layout.nodes["us-node"].port)  # type: ignore[attr-defined]
        await us_node.stop(0)  # type: ignore[attr-defined]
        async with load_profile(fed.profiles["ca.rcmp"]).async_client() as client:
            outcome = await run_scenario(client, fed, rcmp)
        assert isinstance(outcome.error, errors.Unavailable), outcome.error
        assert "us-node" in outcome.error.message
        # The failure, like every refusal, comes with a receipt proving it was logged.
        receipt = outcome.error.receipt
        assert isinstance(receipt, pb.Receipt)
        trust = FederationTrust(Federation.load(fed.layout.federation_file))
        verified = verify_refusal(receipt, trust, query_digest=receipt.query_digest)
        assert verified.outcome == "failed"
    store = LogStore.open(f"sqlite:///{fed.audit_db}", create=False)
    try:
        logged = [decode_event(data) for _, _, data in store.iter_entries(store.tree_size())]
    finally:
        store.close()
    kinds = [e.kind for e in logged]
    assert kinds == ["decision", "failed"]
    failure = logged[1]
    assert isinstance(failure, FailedEvent) and failure.node == "us-node"


@pytest.fixture(autouse=True)
def _quiet_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    # Connection-refused retries are expected here; keep the test's output readable.
    monkeypatch.setenv("GRPC_VERBOSITY", "NONE")


async def test_gateway_fails_closed_when_the_audit_log_is_down(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=10, seed=3)
    rcmp = next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))
    async with running_federation(fed) as running:
        async with load_profile(fed.profiles["ca.rcmp"]).async_client() as client:
            first = await run_scenario(client, fed, rcmp)
            assert first.result is not None, first.error
            size = await running.gateway.ledger.log.tree_size()
            await running.gateway.ledger.log.close()  # the log can no longer be written
            second = await run_scenario(client, fed, rcmp)
        assert isinstance(second.error, errors.Unavailable), second.error
        assert "audit" in second.error.message
        # Nothing reached the node: the witnessing loop may still have shown it the log as it was
        # when it closed, but no checkpoint beyond it (a forwarded query would carry one).
        assert await running.gateway.router.witness_state("us-node") <= size
