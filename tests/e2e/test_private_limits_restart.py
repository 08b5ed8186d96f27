"""The private hit check's daily limit is durable: a node process killed and restarted keeps it.

The gateway and both nodes run as `comity ... serve` processes. The Canadian node may let one
order test two selectors a day; two private checks pass, the node is killed (SIGKILL: no clean
shutdown) and started again, and the third is refused with ``PRIVATE_LIMIT`` naming the two
already tested. The node's own log of evaluations holds the two that ran, with their order and
selector counts, and no selector.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from datetime import UTC, datetime

import pytest
from served import port_of, serving

from comity.core import errors
from comity.core.selectors import SelectorType
from comity.sdk.demo.run import Scenario, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.private import PrivateResult
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec, Selector, read_order_file


@pytest.fixture(autouse=True)
def _quiet_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_VERBOSITY", "NONE")


def _spec(fed: DemoFederation, s: Scenario) -> QuerySpec:
    path = fed.orders.get(s.order.order_id) or fed.sign_order(s.order, now=datetime.now(UTC))
    return QuerySpec(
        target_node=s.node,
        selectors=[Selector("email", s.person.selectors[SelectorType.EMAIL])],
        categories=["subscriber"],
        kind="private-hit-check",
        case_reference=s.case_reference,
        facts=s.facts,
        link_to_offence=s.link,
        legal_order=read_order_file(path),
        time_range=s.time_range,
    )


async def _check(fed: DemoFederation, s: Scenario) -> PrivateResult:
    async with load_profile(fed.profiles["us.fbi"]).async_client() as client:
        for _ in range(50):  # the gateway's channel to a (re)started node may be in back-off
            try:
                return await client.private_hit_check(_spec(fed, s))
            except errors.Unavailable:
                await asyncio.sleep(0.2)
        return await client.private_hit_check(_spec(fed, s))


@pytest.mark.asyncio
async def test_private_limit_survives_a_node_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fed = build_demo_federation(tmp_path / "fed", people=10, seed=21)
    with fed.node_configs["ca-node"].open("a", encoding="utf-8") as config:
        config.write("\n[private]\nper_order_per_day = 2\n")
    s = next(x for x in scenarios(fed) if x.title.startswith("FBI asks the Canadian node whether"))
    ca = fed.layout.nodes["ca-node"]
    with (
        serving("gateway", fed.gateway_config, port_of(fed.layout.gateway.endpoint)),
        serving("node", fed.node_configs["us-node"], fed.layout.nodes["us-node"].port),
    ):
        with serving("node", fed.node_configs["ca-node"], ca.port) as node:
            first = await _check(fed, s)
            second = await _check(fed, s)
            assert first.hit and second.hit
            node.send_signal(signal.SIGKILL)
            node.wait()
        with (
            serving("node", fed.node_configs["ca-node"], ca.port),
            pytest.raises(errors.ResourceExhausted) as caught,
        ):
            await _check(fed, s)
    assert {v.check for v in caught.value.violations} == {"PRIVATE_LIMIT"}
    assert f"order {s.order.order_id} may test at most 2 selectors a day" in caught.value.message
    assert "2 tested already" in caught.value.message
    with sqlite3.connect(fed.directory / "data" / "ca-node.db") as db:
        rows = db.execute(
            "SELECT query_id, order_id, agency, selectors FROM comity_private_evaluations ORDER BY id"
        ).fetchall()
        dumped = b"".join(
            bytes(str(r), "utf-8") for r in db.execute("SELECT * FROM comity_private_evaluations")
        )
    assert rows == [
        (first.query_id, s.order.order_id, "us.fbi", 1),
        (second.query_id, s.order.order_id, "us.fbi", 1),
    ]
    assert s.person.selectors[SelectorType.EMAIL].encode() not in dumped
