"""Three gateway replicas over one PostgreSQL log survive the loss of one and a rolling restart under load.

Real processes on loopback: both nodes and three ``comity gateway serve`` processes over one
PostgreSQL database of this module's own, the federation file listing every replica
(``replica_endpoints``), the agreements' daily quotas raised so load does not run into them.
Investigators' programs send queries through every replica at once, with the SDK's own
failover: each client's profile names one replica, and the client follows the federation
file's others; a query whose replica went away is sent again by the SDK, as a new query, through
the next.

- The first replica (the federation's ``endpoint``, which nodes asked alone before) is killed
  with SIGKILL under load: the SDK sends the queries it had in flight again (new query ids),
  queries through the other two never fail, every query ends answered, and every answered
  query's decision and disclosure are in the log, which verifies end to end.
- Two replicas are restarted one after the other (SIGTERM, start again) under load: the same.
- A policy refusal is never sent again (one query id in the log), and with every replica down
  the SDK stops at its bound with an error naming each address (the CLI too, without a
  traceback); the CLI says in one line when it sent a query again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from served import gateway_on_postgres, replica_configs, start_server, stop_server

from bench.federation import own_database, prepare_federation
from comity.audit.note import Ed25519Verifier
from comity.audit.store import LogStore
from comity.audit.verify import verify_log
from comity.core.errors import Attempt, PermissionDenied, Unavailable
from comity.core.federation import Federation
from comity.sdk.client import AsyncClient
from comity.sdk.demo.run import Scenario, run_scenario, scenarios
from comity.sdk.demo.setup import DemoFederation, free_ports
from comity.sdk.profile import Profile, load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")

COMITY = str(Path(sys.executable).parent / "comity")
CLIENTS = 6  # two per replica


@dataclasses.dataclass
class Cluster:
    fed: DemoFederation
    url: str
    ports: list[int]
    configs: list[Path]
    logs: Path
    gateways: list[subprocess.Popen[bytes]]
    others: list[subprocess.Popen[bytes]]

    def profile(self, agency: str, replica: int, *, alone: bool = False) -> Profile:
        """``agency``'s profile naming ``replica``; the client follows the federation's other
        replicas, unless ``alone`` (then it may not send a query again)."""
        profile = load_profile(self.fed.profiles[agency])
        changed = dataclasses.replace(profile, address=f"127.0.0.1:{self.ports[replica]}")
        return dataclasses.replace(changed, resubmissions=0) if alone else changed

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

    # (address, query id, loop time the query was sent at)
    answered: list[tuple[str, str, float]] = dataclasses.field(default_factory=list)
    resubmitted: list[tuple[Attempt, ...]] = dataclasses.field(default_factory=list)  # every attempt
    failed: list[str] = dataclasses.field(default_factory=list)  # queries that ended unanswered

    def failed_attempts(self) -> list[Attempt]:
        """The attempts the SDK sent again, each through the next replica."""
        return [a for attempts in self.resubmitted for a in attempts[:-1]]


def _scenario(fed: DemoFederation) -> Scenario:
    return next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))


async def _load(c: Cluster, stop: asyncio.Event, load: Load) -> None:
    s = _scenario(c.fed)
    # One client per investigator's program, each starting at its own replica.
    clients = [c.profile(s.agency, i % 3).async_client() for i in range(CLIENTS)]

    async def client_loop(client: AsyncClient) -> None:
        while not stop.is_set():
            sent = asyncio.get_running_loop().time()
            outcome = await run_scenario(client, c.fed, s)
            if outcome.result is None:
                assert outcome.error is not None
                attempts = [(a.address, a.outcome) for a in outcome.error.attempts]
                load.failed.append(f"{outcome.error.diagnostics()} after {attempts}")
                continue
            result = outcome.result
            load.answered.append((result.attempts[-1].address, result.query_id, sent))
            if result.resubmitted:
                load.resubmitted.append(result.attempts)

    try:
        await asyncio.gather(*(client_loop(client) for client in clients))
    finally:
        for client in clients:
            await client.close()


async def _warm(c: Cluster, replicas: tuple[int, ...] = (0, 1, 2)) -> None:
    """One query answered by each of ``replicas`` itself (a node's channel to a new gateway may be
    connecting)."""
    s = _scenario(c.fed)
    for replica in replicas:
        address = f"127.0.0.1:{c.ports[replica]}"
        async with c.profile(s.agency, replica, alone=True).async_client() as client:
            for _ in range(50):
                outcome = await run_scenario(client, c.fed, s)
                if outcome.result is not None:
                    break
                await asyncio.sleep(0.2)
            assert outcome.result is not None, outcome.error and outcome.error.diagnostics()
            assert [a.address for a in outcome.result.attempts] == [address]


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


def _check_resubmissions(c: Cluster, load: Load) -> None:
    """Each query sent again was a new query (its own id), through the next replica, and only
    after its replica went away."""
    for attempts in load.resubmitted:
        assert len({a.query_id for a in attempts}) == len(attempts), attempts
        for failed, following in itertools.pairwise(attempts):
            assert failed.outcome.startswith("UNAVAILABLE: the connection to this replica failed"), attempts
            assert following.address != failed.address, attempts
    # A query id the log holds is one query: a failed attempt's id is never an answered one's.
    answered = {q for _, q, _ in load.answered}
    assert answered.isdisjoint(a.query_id for a in load.failed_attempts())


def _check_log(c: Cluster, load: Load) -> None:
    logged = _logged(c)
    missing = [q for _, q, _ in load.answered if not {"decision", "disclosed"} <= logged.get(q, set())]
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
    killed_at, killed_time = len(load.answered), asyncio.get_running_loop().time()
    await asyncio.sleep(6)
    stop.set()
    await running
    assert load.failed == [], load.failed[:3]
    assert before > 0 and len(load.answered) > killed_at + 10, (before, killed_at, len(load.answered))
    killed = f"127.0.0.1:{cluster.ports[0]}"
    # The SDK sent the queries it had on the killed replica again, through another one.
    assert load.resubmitted, "no query was in flight on the killed replica"
    # Through the replicas still up, not one attempt failed.
    assert {a.address for a in load.failed_attempts()} == {killed}, (load.resubmitted[:3], cluster.log_text())
    # Queries sent after the kill were answered by the others (one the killed replica answered
    # just before it died may be counted after the kill: the wait above held the event loop).
    after = {a for a, _, sent in load.answered if sent > killed_time}
    assert after <= {f"127.0.0.1:{p}" for p in cluster.ports[1:]}
    _check_resubmissions(cluster, load)
    _check_log(cluster, load)


async def test_a_rolling_restart_of_two_replicas_answers_every_query(cluster: Cluster) -> None:
    await _warm(cluster)
    load, stop = Load(), asyncio.Event()
    running = asyncio.create_task(_load(cluster, stop, load))
    try:
        for replica in (1, 2):
            await asyncio.sleep(2)
            await asyncio.to_thread(stop_server, cluster.gateways[replica])
            await asyncio.sleep(1)
            await asyncio.to_thread(cluster.start, replica)
        await asyncio.sleep(4)
    finally:
        stop.set()
        await running
    assert load.failed == [], load.failed[:3]
    _check_resubmissions(cluster, load)
    _check_log(cluster, load)
    # Each restarted replica answers again, itself.
    await _warm(cluster, (1, 2))


async def test_a_refusal_is_never_sent_again_and_every_replica_down_stops_at_the_bound(
    cluster: Cluster,
) -> None:
    await _warm(cluster)
    fbi = next(s for s in scenarios(cluster.fed) if s.title.startswith("FBI asks about a minor"))
    before = _logged(cluster)
    # Replica 0 is down: the first attempt fails to connect, the second is refused by policy.
    stop_server(cluster.gateways[0])
    async with cluster.profile(fbi.agency, 0).async_client() as client:
        refused = await run_scenario(client, cluster.fed, fbi)
    assert isinstance(refused.error, PermissionDenied), refused
    attempts = refused.error.attempts
    assert [a.address for a in attempts] == [f"127.0.0.1:{p}" for p in cluster.ports[:2]], attempts
    new = {q: kinds for q, kinds in _logged(cluster).items() if q not in before}
    # Exactly one query in the log, the refused one: its refusal was not sent again.
    assert list(new) == [refused.error.query_id] == [attempts[1].query_id], new

    for replica in (1, 2):
        stop_server(cluster.gateways[replica])
    s = _scenario(cluster.fed)
    profile = cluster.profile(s.agency, 0)
    async with profile.async_client() as client:
        down = await run_scenario(client, cluster.fed, s)
    assert isinstance(down.error, Unavailable), down
    assert len(down.error.attempts) == profile.resubmissions + 1
    assert len({a.query_id for a in down.error.attempts}) == profile.resubmissions + 1
    for port in cluster.ports:
        assert f"127.0.0.1:{port}" in down.error.message
    assert _logged(cluster).keys() == before.keys() | new.keys()

    # The command line says the same, in plain words.
    cli = await _cli(_query_args(cluster.fed, s, cluster.fed.profiles[s.agency]))
    assert cli.returncode != 0
    assert "no gateway replica answered 4 attempts" in cli.stderr, cli.stderr
    assert "Traceback" not in cli.stderr + cli.stdout


async def test_the_cli_says_when_it_sent_a_query_again(cluster: Cluster) -> None:
    await _warm(cluster)
    stop_server(cluster.gateways[0])  # the profile's own address
    s = _scenario(cluster.fed)
    cli = await _cli([*_query_args(cluster.fed, s, cluster.fed.profiles[s.agency]), "--json"])
    assert cli.returncode == 0, cli.stderr
    answer = json.loads(cli.stdout)
    attempts = answer["attempts"]
    assert [a["address"] for a in attempts] == [f"127.0.0.1:{p}" for p in cluster.ports[:2]]
    assert attempts[1]["query_id"] == answer["query_id"] != attempts[0]["query_id"]
    lines = [line for line in cli.stderr.splitlines() if line.startswith("resubmitted: ")]
    assert len(lines) == 1 and attempts[0]["query_id"] in lines[0], cli.stderr
    assert "\x1b[" not in cli.stderr  # plain when piped


async def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    """``comity ARGS`` as an investigator runs it, its output piped."""
    return await asyncio.to_thread(
        subprocess.run, [COMITY, *args], capture_output=True, text=True, timeout=120
    )


def _query_args(fed: DemoFederation, s: Scenario, profile: Path) -> list[str]:
    order = fed.orders.get(s.order.order_id) or fed.sign_order(s.order, now=datetime.now(UTC))
    args = ["query", "--profile", str(profile), "--node", s.node, "--order", str(order)]
    args += ["--kind", s.kind, "--case", s.case_reference, "--facts", s.facts, "--link", s.link]
    args += ["--since", s.time_range[0].isoformat(), "--until", s.time_range[1].isoformat()]
    for t in s.order.selector_types:
        args += ["--selector", f"{t.name.lower()}:{s.person.selectors[t]}"]
    for c in s.categories:
        args += ["--category", c.lower()]
    return args
