"""Three `comity gateway serve` processes over one PostgreSQL database enforce one quota and one
emergency track.

The nodes and the gateways run as real processes on loopback; the log, the replay store and
the shared state are one PostgreSQL database of this test's own. Queries go to every replica
at once, several at a time: exactly the quota is allowed, whichever replica decides, and each
decision's logged count is the number of decisions before it in the log. An emergency order
used through one replica and rejected by the court through another is refused by the third.
A query that fails because its node process is stopped gives its quota count back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from served import gateway_on_postgres, replica_configs, start_server
from sqlalchemy import select

from bench.federation import own_database
from comity.audit.store import LogStore
from comity.core.emergency import sign_validation, validation_for
from comity.core.errors import ComityError, Unavailable
from comity.core.keys import SigningKey
from comity.sdk.demo.run import Outcome, emergency_scenario, run_scenario, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation, free_ports
from comity.sdk.profile import Profile, load_profile
from comity.sdk.query import read_order_file
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")

COMITY = str(Path(sys.executable).parent / "comity")
QUOTA = 50  # the agreement bundle's daily quota per investigator


@dataclasses.dataclass
class Replicas:
    fed: DemoFederation
    url: str
    ports: list[int]
    processes: list[subprocess.Popen[bytes]]

    def profile(self, agency: str, replica: int) -> Profile:
        profile = load_profile(self.fed.profiles[agency])
        return dataclasses.replace(profile, address=f"127.0.0.1:{self.ports[replica]}")


@pytest.fixture(scope="module")
def replicas(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    fed = build_demo_federation(Path(tmp_path_factory.mktemp("replicas")), people=20, seed=7)
    database = contextlib.ExitStack()
    url = database.enter_context(own_database(postgres_url, "comity_replicas"))
    text = gateway_on_postgres(fed.gateway_config.read_text(), url)
    first = int(fed.layout.gateway.endpoint.rsplit(":", 1)[1])
    ports = [first, *free_ports(2)]
    configs = replica_configs(fed.gateway_config, text, ports)
    logs = fed.directory / "logs"
    logs.mkdir()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # The first gateway before the nodes: a node's witness reads the log's state at start.
        processes.append(start_server("gateway", configs[0], ports[0], logs / "gateway-0.log"))
        for node, config in fed.node_configs.items():
            processes.append(start_server("node", config, fed.layout.nodes[node].port, logs / f"{node}.log"))
        for i in (1, 2):
            processes.append(start_server("gateway", configs[i], ports[i], logs / f"gateway-{i}.log"))
        yield Replicas(fed, url, ports, processes)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        database.close()


async def _warm(replicas: Replicas, agency: str, title: str) -> None:
    """One query per replica until each answers (a node's channel may still be in back-off)."""
    s = next(x for x in scenarios(replicas.fed) if x.title.startswith(title))
    for replica in range(3):
        async with replicas.profile(agency, replica).async_client() as client:
            for _ in range(50):
                outcome = await run_scenario(client, replicas.fed, s)
                if outcome.result is not None:
                    break
                await asyncio.sleep(0.2)
            assert outcome.result is not None, outcome.error


def _decisions(url: str, investigator: str) -> list[dict[str, object]]:
    store = LogStore.open(url, create=False)
    try:
        entries = store.entries(0, store.tree_size())
    finally:
        store.close()
    decoded = [json.loads(e) for e in entries]
    return [d for d in decoded if d["kind"] == "decision" and d["investigator"] == investigator]


async def test_three_replicas_allow_exactly_the_quota_under_concurrency(replicas: Replicas) -> None:
    fed = replicas.fed
    rcmp = next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))
    await _warm(replicas, "ca.rcmp", "RCMP fetches")
    clients, per_client = 9, 7  # three clients per replica, each query waiting for the last
    total = clients * per_client + 3  # and the three warm-up queries

    async def client_run(replica: int) -> list[Outcome]:
        async with replicas.profile("ca.rcmp", replica).async_client() as client:
            return [await run_scenario(client, fed, rcmp) for _ in range(per_client)]

    runs = await asyncio.gather(*(client_run(i % 3) for i in range(clients)))
    outcomes = [o for run in runs for o in run]
    allowed = [o for o in outcomes if o.result is not None]
    refused = [o.error for o in outcomes if o.error is not None]
    assert len(allowed) + 3 == QUOTA
    assert all(isinstance(e, ComityError) for e in refused)
    assert all("QUOTA" in {v.code for v in e.violations} for e in refused if e is not None), [
        (e.message, [v.code for v in e.violations]) for e in refused if e is not None
    ]
    investigator = load_profile(fed.profiles["ca.rcmp"]).identity().investigator
    decisions = _decisions(replicas.url, investigator)
    # Each logged count is the number of decisions before it in the log, whichever replica made it.
    counts = [d["facts"]["investigator_queries_today"] for d in decisions]  # type: ignore[index]
    assert counts == list(range(total))
    assert [d["decision"] for d in decisions] == ["ALLOW"] * QUOTA + ["DENY"] * (total - QUOTA)


async def test_an_emergency_order_rejected_through_one_replica_is_refused_by_another(
    replicas: Replicas,
) -> None:
    fed = replicas.fed
    s = emergency_scenario(fed)
    async with replicas.profile(s.agency, 0).async_client() as client:
        for _ in range(50):
            used = await run_scenario(client, fed, s)
            if used.result is not None:
                break
            await asyncio.sleep(0.2)
        assert used.result is not None, used.error
    agency = fed.layout.agencies[s.agency]
    court = SigningKey.load(agency.authority_key, key_id=agency.authority)
    order = read_order_file(fed.orders[s.order.order_id])
    rejection = sign_validation(validation_for(order, authority=court.key_id, confirmed=False), court)
    async with replicas.profile(s.agency, 1).async_client() as client:
        logged = await client.validate_emergency(rejection)
        assert not logged.confirmed
    # A second review through another replica is refused: the order was reviewed.
    async with replicas.profile(s.agency, 2).async_client() as client:
        with pytest.raises(ComityError, match="already reviewed"):
            await client.validate_emergency(rejection)
        again = await run_scenario(client, fed, s)
    assert again.result is None and again.error is not None
    assert "EMERGENCY_VALIDATION" in {v.code for v in again.error.violations}


def _quota_count(url: str, investigator: str) -> int:
    store = LogStore.open(url, create=False)
    q = store.tables.shared.quota.c
    try:
        with store.writer.begin() as conn:
            row = conn.execute(select(q.count).where(q.kind == "i", q.subject == investigator)).first()
    finally:
        store.close()
    return 0 if row is None else int(row[0])


async def test_a_query_failed_because_its_node_is_down_does_not_use_quota(replicas: Replicas) -> None:
    fed = replicas.fed
    s = next(x for x in scenarios(fed) if x.title.startswith("FBI asks the Canadian node"))
    await _warm(replicas, "us.fbi", "FBI asks the Canadian node")
    investigator = load_profile(fed.profiles["us.fbi"]).identity().investigator
    before = _quota_count(replicas.url, investigator)
    config = fed.node_configs["ca-node"]
    index = next(i for i, p in enumerate(replicas.processes) if str(config) in p.args)  # type: ignore[operator]
    node = replicas.processes[index]
    node.terminate()
    node.wait(timeout=15)
    try:
        async with replicas.profile("us.fbi", 1).async_client() as client:
            outcome = await run_scenario(client, fed, s)
        assert isinstance(outcome.error, Unavailable), outcome.error
        # The decision was logged and counted, then its failure gave the count back.
        assert _quota_count(replicas.url, investigator) == before
        receipt = outcome.error.receipt
        assert isinstance(receipt, pb.Receipt)
        failures = [json.loads(e.entry) for e in receipt.entries if b'"kind":"failed"' in e.entry]
        assert [(f["reason"], f["quota_released"]) for f in failures] == [("UNAVAILABLE", True)]
    finally:
        port = fed.layout.nodes["ca-node"].port
        replicas.processes[index] = start_server(
            "node", config, port, fed.directory / "logs" / "ca-node-2.log"
        )
    await _warm(replicas, "us.fbi", "FBI asks the Canadian node")
