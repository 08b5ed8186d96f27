"""A FETCH after a private hit (TWO_STEP without a node-issued hit reference), and the node's
inbound policy on private checks.

A FETCH of traffic names the private hit check it follows and each selector's commitment salt;
the node admits it only when its own log of evaluations holds that check, for the same agency and
order, committed to these selectors, and then applies every other check, NO_TARGETING included.
The node's inbound bundle decides private checks too: on the order's facts the gateway vouches for.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import UTC, datetime

import pytest

from comity.core import errors
from comity.core.federation import Federation
from comity.core.selectors import SelectorType
from comity.sdk.demo.run import RunningFederation, Scenario, scenarios
from comity.sdk.demo.setup import OrderSpec
from comity.sdk.private import PrivateResult
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec, Selector, read_order_file
from comity.sdk.receipts import FederationTrust, verify_refusal
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _scenario(running: RunningFederation) -> Scenario:
    return next(
        s for s in scenarios(running.federation) if s.title.startswith("FBI asks the Canadian node whether")
    )


def _spec(running: RunningFederation, s: Scenario, order: OrderSpec, *, kind: str) -> QuerySpec:
    fed = running.federation
    path = fed.orders.get(order.order_id) or fed.sign_order(order, now=datetime.now(UTC))
    return QuerySpec(
        target_node=s.node,
        selectors=[Selector("email", order.person.selectors[SelectorType.EMAIL])],
        categories=["subscriber", "traffic"],
        kind=kind,
        case_reference=s.case_reference,
        facts=s.facts,
        link_to_offence=s.link,
        legal_order=read_order_file(path),
        time_range=s.time_range,
    )


def _checks(err: errors.ComityError) -> set[str]:
    return {v.check or v.code for v in err.violations}


def _entries(result: PrivateResult) -> list[dict[str, object]]:
    return [json.loads(e.entry) for e in result.receipt.entries]


async def test_fetch_after_a_private_hit_is_admitted_by_the_nodes_log(running: RunningFederation) -> None:
    s = _scenario(running)
    async with load_profile(running.federation.profiles["us.fbi"]).async_client() as client:
        private = await client.private_hit_check(_spec(running, s, s.order, kind="private-hit-check"))
        assert private.hit
        fetch = _spec(running, s, s.order, kind="fetch")
        # Without a hit reference or a private precedent, TWO_STEP refuses a FETCH of traffic.
        with pytest.raises(errors.PermissionDenied) as caught:
            await client.query(fetch)
        assert "TWO_STEP" in _checks(caught.value)
        result = await client.query(dataclasses.replace(fetch, private_precedent=private.precedent()))
    assert result.hit and result.records
    assert {r.category for r in result.records} >= {"TRAFFIC"}
    # The FETCH's logged decision names the private check it follows.
    decision = json.loads(result.receipt.entries[0].entry)
    assert decision["facts"]["private_precedent"] == private.query_id
    assert decision["facts"]["has_hit_reference"] is True


async def test_fetch_with_a_precedent_the_node_did_not_log_is_refused(running: RunningFederation) -> None:
    s = _scenario(running)
    async with load_profile(running.federation.profiles["us.fbi"]).async_client() as client:
        private = await client.private_hit_check(_spec(running, s, s.order, kind="private-hit-check"))
        fetch = _spec(running, s, s.order, kind="fetch")
        forged = [
            # Another salt: the node cannot find the selector among the check's commitments.
            pb.PrivatePrecedent(query_id=private.query_id, salts=[bytes(32)]),
            # A check this node never evaluated.
            pb.PrivatePrecedent(query_id="00000000-0000-4000-8000-000000000000", salts=[bytes(32)]),
            # No salt for the selector.
            pb.PrivatePrecedent(query_id=private.query_id),
        ]
        for precedent in forged:
            with pytest.raises(errors.PermissionDenied) as caught:
                await client.query(dataclasses.replace(fetch, private_precedent=precedent))
            assert _checks(caught.value) == {"PRIVATE_PRECEDENT"}, precedent
            assert "does not admit it" in caught.value.message
            assert caught.value.receipt is not None  # the node's refusal is in the log


async def test_fetch_after_a_private_check_on_an_own_person_is_refused_by_no_targeting(
    running: RunningFederation,
) -> None:
    s = _scenario(running)
    canadian = next(p for p in running.federation.subjects["ca-node"] if p.nationality == p.residence == "CA")
    # The order attests a US person (the gateway's NO_TARGETING passes on the attestation); the
    # node's records say the subject is Canadian.
    order = OrderSpec(
        "US-SDNY-2026-0777",
        "us.fbi",
        s.order.offence_code,
        canadian,
        (SelectorType.EMAIL,),
        ("SUBSCRIBER", "TRAFFIC"),
        nationalities=("US",),
        residences=("US",),
    )
    async with load_profile(running.federation.profiles["us.fbi"]).async_client() as client:
        private = await client.private_hit_check(_spec(running, s, order, kind="private-hit-check"))
        # Own persons are left out of the filters: no hit, as a hit check answers.
        assert not private.hit
        selectors = [h.selector for h in private.hits]
        with pytest.raises(errors.PermissionDenied) as caught:
            await client.query(
                dataclasses.replace(
                    _spec(running, s, order, kind="fetch"), private_precedent=private.precedent(selectors)
                )
            )
    # The precedent is valid, so every other check ran: the node's own-person rule refused,
    # with the bundle's generic code.
    assert _checks(caught.value) == {"REFUSED"}
    assert caught.value.receipt is not None


async def test_nodes_inbound_policy_decides_private_checks(running: RunningFederation) -> None:
    s = _scenario(running)
    fed = running.federation
    async with load_profile(fed.profiles["us.fbi"]).async_client() as client:
        allowed = await client.private_hit_check(_spec(running, s, s.order, kind="private-hit-check"))
        node = next(e for e in _entries(allowed) if e["kind"] == "node_decision")
        # The node's allowance names the inbound bundle it decided under.
        assert node["decision"] == "ALLOW" and node["bundle_digest"]
        # An order that has met the node's own-person rule three times (NO_TARGETING_RECORDS_LIMIT,
        # a rule of the node's bundle only): the node refuses its private checks too.
        order = dataclasses.replace(s.order, order_id="US-SDNY-2026-0778")
        with sqlite3.connect(fed.directory / "data" / "ca-node.db") as db:
            db.execute(
                "INSERT INTO comity_order_outcomes (order_id, outcomes) VALUES (?, 3)", (order.order_id,)
            )
        with pytest.raises(errors.PermissionDenied) as caught:
            await client.private_hit_check(_spec(running, s, order, kind="private-hit-check"))
    assert _checks(caught.value) == {"REFUSED"}
    # The node's signed refusal is in the log: the receipt proves it (its real rule is sealed).
    assert isinstance(caught.value.receipt, pb.Receipt)
    trust = FederationTrust(Federation.load(fed.directory / "federation.toml"))
    verified = verify_refusal(caught.value.receipt, trust, query_digest=caught.value.receipt.query_digest)
    assert verified.outcome == "refused by node"
    assert verified.entries.node_decision is not None
    assert verified.entries.node_decision.rule_codes == ("REFUSED",)
    with sqlite3.connect(fed.directory / "data" / "ca-node.db") as db:
        evaluated = db.execute(
            "SELECT COUNT(*) FROM comity_private_evaluations WHERE order_id = ?", (order.order_id,)
        ).fetchone()[0]
    assert evaluated == 0  # refused before any evaluation: nothing counted or evaluated
