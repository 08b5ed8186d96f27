"""Three countries, one federation, an agreement per pair (real nodes, gateway, TLS, SQLite).

US–CA under the shipped agreement, US–GB under an agreement with its own bundles, and no
agreement between CA and GB: each query is decided, at the gateway and at the node, under the
bundles of the agreement covering its pair, and a pair without one is refused ``NO_AGREEMENT``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from comity.audit.events import DecisionEvent, NodeDecisionEvent, RefusedEvent, decode_event
from comity.core import errors
from comity.core.federation import Federation
from comity.nodes.schema import SelectorType
from comity.policy.agreements import ByAgreement
from comity.policy.bundle import PolicyBundle, bundle_path
from comity.policy.bundle_store import BundleStore
from comity.policy.engine import PolicyEngine
from comity.sdk.demo.run import (
    Outcome,
    RunningFederation,
    Scenario,
    run_scenario,
    running_federation,
    scenarios,
)
from comity.sdk.demo.setup import DemoFederation, OrderSpec, build_demo_federation
from comity.sdk.profile import load_profile
from comity.v1 import comity_pb2 as pb
from tests.e2e.three_countries import bundle_variant, third_country_bundles

pytestmark = pytest.mark.asyncio(loop_scope="module")

COUNTRIES = ("US", "CA", "GB")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PolicyBundle]:
    return third_country_bundles(tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, PolicyBundle]) -> DemoFederation:
    folder = next(iter(bundles.values())).path.parent
    return build_demo_federation(
        tmp_path_factory.mktemp("three") / "fed", people=30, seed=11, countries=COUNTRIES, bundles=[folder]
    )


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def running(three: DemoFederation) -> AsyncIterator[RunningFederation]:
    async with running_federation(three) as r:
        yield r


def _entries(receipt: pb.Receipt) -> list[object]:
    return [decode_event(e.entry) for e in receipt.entries]


def _gb_scenario(fed: DemoFederation, node: str, order_id: str, offence: str = "CC 99") -> Scenario:
    """The NCA asks ``node`` for the subscriber records of someone who is none of its persons."""
    other = {"us-node": "CA", "ca-node": "US"}[node]
    target = next(p for p in fed.subjects[node] if p.nationality == other and p.residence == other)
    email = (SelectorType.EMAIL,)
    return Scenario(
        f"NCA fetches subscriber records from {node}",
        "gb.nca",
        node,
        target,
        "fetch",
        ("SUBSCRIBER",),
        OrderSpec(order_id, "gb.nca", offence, target, email, ("SUBSCRIBER",)),
        True,
        "a query under the US–GB agreement",
        facts=(
            "Two pistols seized in Manchester on 2026-08-30 were bought through an online broker whose "
            "invoices were sent to this e-mail address."
        ),
        link="The address received the broker's invoices for the seized pistols.",
        case_reference="NCA-2026-FA-0101",
    )


async def _with_policies(
    running: RunningFederation, policies: ByAgreement[PolicyEngine], s: Scenario
) -> Outcome:
    """Run ``s`` through a gateway that decides under ``policies`` (what an altered gateway would do)."""
    pipeline = running.gateway.pipeline
    assert pipeline is not None
    honest = pipeline._trusted
    pipeline._trusted = dataclasses.replace(honest, policies=policies)
    try:
        return await _run(running.federation, s)
    finally:
        pipeline._trusted = honest


def _rogue(fed: DemoFederation, bundle: PolicyBundle) -> ByAgreement[PolicyEngine]:
    """A gateway's policies deciding every pair under ``bundle``, whatever the federation file says."""
    no_agreements = dataclasses.replace(Federation.load(fed.layout.federation_file), agreements=())
    return ByAgreement(
        no_agreements,
        store=BundleStore(None),  # never asked: without agreements only the fallback decides
        digest_of=lambda a: a.bundle_digest,
        build=PolicyEngine,
        fallback=bundle,
        what="gateway",
    )


async def _run(fed: DemoFederation, s: Scenario) -> Outcome:
    async with load_profile(fed.profiles[s.agency]).async_client() as client:
        return await run_scenario(client, fed, s)


async def test_the_federation_file_lists_one_agreement_per_pair_that_has_bundles(
    three: DemoFederation,
) -> None:
    fed = Federation.load(three.layout.federation_file)
    assert [(a.id, a.parties) for a in fed.agreements] == [
        ("us-ca-agreement", ("US", "CA")),
        ("us-gb-agreement", ("US", "GB")),
    ]
    assert [n.id for n in fed.nodes()] == ["us-node", "ca-node", "gb-node"]


async def test_us_and_canada_query_each_other_under_their_agreement(running: RunningFederation) -> None:
    fed = running.federation
    s = next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))
    outcome = await _run(fed, s)
    assert outcome.result is not None, outcome.error
    decision, node_decision, _ = _entries(outcome.result.receipt)
    assert isinstance(decision, DecisionEvent) and decision.decision == "ALLOW"
    assert (decision.agreement, decision.bundle_digest) == (
        "us-ca-agreement",
        PolicyBundle.load(bundle_path("us-ca-agreement")).digest,
    )
    assert isinstance(node_decision, NodeDecisionEvent)
    assert node_decision.bundle_digest == PolicyBundle.load(bundle_path("us-inbound")).digest


async def test_gb_queries_the_us_under_the_us_gb_agreement_and_its_own_bundles(
    running: RunningFederation, bundles: dict[str, PolicyBundle]
) -> None:
    fed = running.federation
    outcome = await _run(fed, _gb_scenario(fed, "us-node", "GB-WMC-2026-0101"))
    assert outcome.result is not None, outcome.error
    assert outcome.result.node_id == "us-node" and outcome.result.records
    decision, node_decision, _ = _entries(outcome.result.receipt)
    assert isinstance(decision, DecisionEvent)
    assert (decision.agreement, decision.bundle_digest) == (
        "us-gb-agreement",
        bundles["us-gb-agreement"].digest,
    )
    assert decision.facts["requesting_country"] == "GB"
    # The US node decided under its inbound bundle for GB, not the one for Canada.
    assert isinstance(node_decision, NodeDecisionEvent)
    assert node_decision.bundle_digest == bundles["us-inbound-gb"].digest


async def test_gb_to_canada_is_refused_at_the_gateway_with_no_agreement(running: RunningFederation) -> None:
    fed = running.federation
    outcome = await _run(fed, _gb_scenario(fed, "ca-node", "GB-WMC-2026-0102"))
    err = outcome.error
    assert isinstance(err, errors.PermissionDenied), err
    assert err.rule_codes == ["NO_AGREEMENT"] and err.check_codes == ["NO_AGREEMENT"]
    assert "no agreement between GB and CA is in force" in err.message
    assert err.receipt is not None
    (refused,) = _entries(err.receipt)  # type: ignore[arg-type]
    assert isinstance(refused, RefusedEvent)
    assert refused.checks == (("NO_AGREEMENT", "NO_AGREEMENT"),)
    assert (refused.agency, refused.reason_code) == ("gb.nca", "PERMISSION_DENIED")


async def test_the_canadian_node_refuses_a_pair_without_agreement_that_a_gateway_let_through(
    running: RunningFederation, tmp_path: Path
) -> None:
    """A gateway deciding under an agreement the federation file does not list (an altered or
    stale gateway): the node checks the agreement itself and refuses."""
    fed = running.federation
    gb_ca = bundle_variant("us-ca-agreement", tmp_path / "gb-ca", name="gb-ca", swap={"US": "GB", "GB": "US"})
    rogue = _rogue(fed, gb_ca)
    # Under the rogue bundle, GB's catalogue is the one the shipped bundle has for the US.
    outcome = await _with_policies(
        running, rogue, _gb_scenario(fed, "ca-node", "GB-WMC-2026-0103", "18 USC 1030(a)(5)(A)")
    )
    err = outcome.error
    assert isinstance(err, errors.PermissionDenied), err
    assert err.rule_codes == ["NO_AGREEMENT"]
    assert "no agreement between GB and CA is in force" in err.message
    assert err.receipt is not None
    kinds = [type(e).__name__ for e in _entries(err.receipt)]
    assert kinds == ["DecisionEvent", "FailedEvent"]  # allowed by the rogue gateway, ended by the node


async def test_a_node_refuses_a_query_its_agreement_covers_but_the_gateway_decided_under_another_bundle(
    running: RunningFederation, tmp_path: Path
) -> None:
    fed = running.federation
    edited = bundle_variant("us-ca-agreement", tmp_path / "edited", name="us-ca-edited", swap={"ZZ": "ZZ"})
    s = next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))
    outcome = await _with_policies(running, _rogue(fed, edited), s)
    err = outcome.error
    assert isinstance(err, errors.PermissionDenied), err
    assert err.check_codes == ["AGREEMENT_BUNDLE_MISMATCH"] and err.rule_codes == ["NO_AGREEMENT"]
    assert edited.digest in err.message and "'us-ca-agreement'" in err.message
    assert err.receipt is not None
    assert [type(e).__name__ for e in _entries(err.receipt)] == ["DecisionEvent", "FailedEvent"]


async def test_the_transparency_report_counts_per_agreement_and_pair(running: RunningFederation) -> None:
    """Last in the module: the queries above, as the legal officers' report counts them."""
    comity = Path(sys.executable).with_name("comity")
    args = [str(comity), "audit", "report", "--db", str(running.federation.audit_db), "--json"]
    done = await asyncio.to_thread(
        subprocess.run, args, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    counts = {
        (r["agreement"], r["requesting"], r["responding"], r["decision"]): r["queries"]
        for r in report["agreements"]
    }
    assert counts[("us-ca-agreement", "CA", "US", "ALLOW")] >= 1
    assert counts[("us-gb-agreement", "GB", "US", "ALLOW")] == 1
    assert not any(a == "us-gb-agreement" and "CA" in (r, s) for a, r, s, _ in counts)
    assert report["no_agreement"] == {"gb.nca": 1}
