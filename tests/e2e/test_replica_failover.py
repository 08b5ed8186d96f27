"""Three gateway replicas over one PostgreSQL log survive the loss of one and a rolling restart under load.

Real processes on loopback: both nodes and three ``comity gateway serve`` processes over one
PostgreSQL database of this module's own, the federation file listing every replica
(``replica_endpoints``), the agreements' daily quotas raised so load does not run into them.
Investigators' programs send queries through every replica at once; a query refused because
its replica went away (``UNAVAILABLE``, or the deadline) is sent again, with a new query id,
through the next replica, as the protocol guide says a client may.

- The first replica (the federation's ``endpoint``, which nodes asked alone before) is killed
  with SIGKILL under load: queries through the other two never fail, every query ends answered
  (after at most a few resubmissions), and every answered query's decision and disclosure are
  in the log, which verifies end to end.
- Two replicas are restarted one after the other (SIGTERM, start again) under load: the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from served import gateway_on_postgres, own_database, replica_configs, start_server, stop_server

from bench.federation import prepare_federation
from comity.audit.note import Ed25519Verifier
from comity.audit.store import LogStore
from comity.audit.verify import verify_log
from comity.core.errors import ComityError, DeadlineExceeded, Unavailable
from comity.core.federation import Federation
from comity.sdk.demo.run import Scenario, run_scenario, scenarios
from comity.sdk.demo.setup import DemoFederation, free_ports
from comity.sdk.profile import Profile, load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")

COMITY = str(Path(sys.executable).parent / "comity")
CLIENTS = 6  # two per replica
RESUBMISSIONS = 5  # a query refused by a replica that went away is sent again at most this often


@dataclasses.dataclass
class Cluster:
    fed: DemoFederation
    url: str
    ports: list[int]
    configs: list[Path]
    logs: Path
    gateways: list[subprocess.Popen[bytes]]
    others: list[subprocess.Popen[bytes]]

    def profile(self, agency: str, replica: int) -> Profile:
        profile = load_profile(self.fed.profiles[agency])
        return dataclasses.replace(profile, address=f"127.0.0.1:{self.ports[replica]}")

    def start(self, replica: int) -> None:
        log = self.logs / f"gateway-{replica}.log"
        self.gateways[replica] = start_server("gateway", self.configs[replica], self.ports[replica], log)

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.logs.iterdir()))


@pytest.fixture
def cluster(postgres_url: str, tmp_path: Path) -> Iterator[Cluster]:
    fed = prepare_federation(tmp_path / "fed", people=20, seed=11)
    database = contextlib.ExitStack()
    url = database.enter_context(own_database(postgres_url, "comity_failover"))
    text = gateway_on_postgres(fed.gateway_config.read_text(), url)
    first = int(fed.layout.gateway.endpoint.rsplit(":", 1)[1])
    ports = [first, *free_ports(2)]
    # Every replica in the federation file: the nodes reach the log through any of them.
    federation = fed.layout.federation_file
    endpoint = f'endpoint = "{fed.layout.gateway.endpoint}"\n'
    replicas = ", ".join(f'"127.0.0.1:{p}"' for p in ports[1:])
    federation.write_text(
        federation.read_text().replace(endpoint, f"{endpoint}replica_endpoints = [{replicas}]\n", 1)
    )
    assert Federation.load(federation).gateway.endpoints == tuple(f"127.0.0.1:{p}" for p in ports)
    configs = replica_configs(fed.gateway_config, text, ports)
    logs = fed.directory / "logs"
    logs.mkdir()
    c = Cluster(fed, url, ports, configs, logs, [], [])
    try:
        # The first gateway before the nodes: a node's witness reads the log's state at start.
        c.gateways.append(start_server("gateway", configs[0], ports[0], logs / "gateway-0.log"))
        for node, config in fed.node_configs.items():
            c.others.append(start_server("node", config, fed.layout.nodes[node].port, logs / f"{node}.log"))
        for i in (1, 2):
            c.gateways.append(start_server("gateway", configs[i], ports[i], logs / f"gateway-{i}.log"))
        yield c
    finally:
        for process in [*c.gateways, *c.others]:
            stop_server(process)
        database.close()


@dataclasses.dataclass
class Load:
    """What the investigators' programs saw."""

    answered: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # (replica, query id)
    resubmitted: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # (replica, why)
    failed: list[str] = dataclasses.field(default_factory=list)  # queries that ended unanswered
    errors_by_replica: dict[int, int] = dataclasses.field(default_factory=dict)


def _scenario(fed: DemoFederation) -> Scenario:
    return next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))


async def _load(c: Cluster, stop: asyncio.Event, load: Load) -> None:
    s = _scenario(c.fed)
    clients = [c.profile(s.agency, r).async_client() for r in range(3)]

    async def one_query(home: int) -> None:
        replica = home
        for _ in range(RESUBMISSIONS + 1):
            outcome = await run_scenario(clients[replica], c.fed, s)
            if outcome.result is not None:
                load.answered.append((replica, outcome.result.query_id))
                return
            err = outcome.error
            load.errors_by_replica[replica] = load.errors_by_replica.get(replica, 0) + 1
            if not isinstance(err, Unavailable | DeadlineExceeded):
                assert isinstance(err, ComityError)
                load.failed.append(f"replica {replica}: {err.diagnostics()}")
                return
            load.resubmitted.append((replica, err.message))
            replica = (replica + 1) % 3  # the replica went away: the next one
        load.failed.append(f"no answer after {RESUBMISSIONS} resubmissions")

    async def client_loop(i: int) -> None:
        while not stop.is_set():
            await one_query(i % 3)

    try:
        await asyncio.gather(*(client_loop(i) for i in range(CLIENTS)))
    finally:
        for client in clients:
            await client.close()


async def _warm(c: Cluster) -> None:
    """One answered query per replica (a node's channel to a new gateway may be connecting)."""
    s = _scenario(c.fed)
    for replica in range(3):
        async with c.profile(s.agency, replica).async_client() as client:
            for _ in range(50):
                outcome = await run_scenario(client, c.fed, s)
                if outcome.result is not None:
                    break
                await asyncio.sleep(0.2)
            assert outcome.result is not None, outcome.error and outcome.error.diagnostics()


def _logged(c: Cluster) -> dict[str, set[str]]:
    """Query id → the kinds of entry the log holds for it."""
    store = LogStore.open(c.url, create=False)
    try:
        entries = store.entries(0, store.tree_size())
    finally:
        store.close()
    kinds: dict[str, set[str]] = {}
    for e in entries:
        body = json.loads(e)
        if "query_id" in body:
            kinds.setdefault(body["query_id"], set()).add(body["kind"])
    return kinds


def _check_log(c: Cluster, load: Load) -> None:
    logged = _logged(c)
    missing = [q for _, q in load.answered if not {"decision", "disclosed"} <= logged.get(q, set())]
    assert missing == [], f"answered but not in the log: {missing}"
    fed = Federation.load(c.fed.layout.federation_file)
    log_key = Ed25519Verifier(fed.gateway.log.origin, fed.gateway.log.key.public_key)
    report = verify_log(c.url, verifier_key=log_key)
    assert report.tree_size >= len(load.answered) * 2


async def test_the_loss_of_any_one_replica_fails_no_query(cluster: Cluster) -> None:
    await _warm(cluster)
    load, stop = Load(), asyncio.Event()
    running = asyncio.create_task(_load(cluster, stop, load))
    await asyncio.sleep(3)
    before = len(load.answered)
    # The federation's own endpoint, which nodes used to be the only way to the log.
    cluster.gateways[0].send_signal(signal.SIGKILL)
    cluster.gateways[0].wait()
    killed_at = len(load.answered)
    await asyncio.sleep(6)
    stop.set()
    await running
    assert load.failed == [], load.failed[:3]
    assert before > 0 and len(load.answered) > killed_at + 10, (before, killed_at, len(load.answered))
    # Through the replicas still up, not one query failed.
    assert load.errors_by_replica.get(1, 0) == 0 and load.errors_by_replica.get(2, 0) == 0, (
        load.errors_by_replica,
        load.resubmitted[:3],
        cluster.log_text(),
    )
    assert {r for r, _ in load.answered[killed_at:]} <= {1, 2}
    _check_log(cluster, load)


async def test_a_rolling_restart_of_two_replicas_answers_every_query(cluster: Cluster) -> None:
    await _warm(cluster)
    load, stop = Load(), asyncio.Event()
    running = asyncio.create_task(_load(cluster, stop, load))
    restarted: dict[int, int] = {}
    try:
        for replica in (1, 2):
            await asyncio.sleep(2)
            await asyncio.to_thread(stop_server, cluster.gateways[replica])
            await asyncio.sleep(1)
            await asyncio.to_thread(cluster.start, replica)
            restarted[replica] = len(load.answered)
        await asyncio.sleep(4)
    finally:
        stop.set()
        await running
    assert load.failed == [], load.failed[:3]
    # Each restarted replica answers again: its clients are back on it.
    for replica, mark in restarted.items():
        assert replica in {r for r, _ in load.answered[mark:]}, (replica, load.resubmitted[-3:])
    _check_log(cluster, load)
