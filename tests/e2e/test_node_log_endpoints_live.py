"""The nodes follow the gateway endpoints of the federation file while they run (real processes).

Two gateway replicas, A and B, over one PostgreSQL database of this module's own; signed
version 1 lists only A (``endpoint``), so the nodes reach the log through A alone. A is
stopped, and the US node restarts meanwhile: it cannot compare its witness state with the log,
so its witness is held (it cosigns nothing, and queries to it are refused). Version 2 adds B as
a replica endpoint; the nodes take it without a restart, the US node's witness compares its
state with the log through B and cosigns again, and queries through B are answered by both
nodes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from served import gateway_on_postgres, port_of, replica_configs, start_server, stop_server, wait_for
from signed_demo import FAR, signed_version

from bench.federation import own_database
from comity.core.federation_sign import envelope_path, sign_federation_file
from comity.core.keys import SigningKey
from comity.sdk.demo.run import Outcome, run_scenario, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation, free_ports
from comity.sdk.profile import load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclasses.dataclass
class Replicas:
    fed: DemoFederation
    original: str
    signer: SigningKey
    ports: list[int]  # A, B
    configs: list[Path]
    logs: dict[str, Path]
    stack: ExitStack
    processes: dict[str, subprocess.Popen[bytes]] = dataclasses.field(default_factory=dict)

    def start(self, name: str) -> None:
        """Start gateway replica ``name`` ("A", "B") or node ``name``, stopped at the end."""
        if name in ("A", "B"):
            i = "AB".index(name)
            process = start_server("gateway", self.configs[i], self.ports[i], self.logs[name])
        else:
            config = self.fed.node_configs[name]
            port = self.fed.layout.nodes[name].port
            process = start_server("node", config, port, self.logs[name], timeout=90)
        self.processes[name] = process
        self.stack.callback(stop_server, process, timeout=15)

    def said(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def publish(self, text: str) -> None:
        file = self.fed.layout.federation_file
        staged = file.with_name("federation.next.toml")
        staged.write_text(text)
        sign_federation_file(staged, self.signer)
        envelope_path(staged).replace(envelope_path(file))
        staged.replace(file)


def _poll_fast(config: Path, section: str) -> None:
    text = config.read_text()
    config.write_text(text.replace(f"[{section}]\n", f"[{section}]\nfederation_poll_seconds = 0.1\n", 1))


@pytest.fixture(scope="module")
def replicas(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    fed = build_demo_federation(Path(tmp_path_factory.mktemp("endpoints")), people=10, seed=17)
    signer = SigningKey.generate("us.fbi/federation-2026")
    file = fed.layout.federation_file
    original = file.read_text()
    file.write_text(signed_version(original, version=1, expires=FAR, signer=signer))
    sign_federation_file(file, signer)
    for config in fed.node_configs.values():
        _poll_fast(config, "node")
    with ExitStack() as stack:
        url = stack.enter_context(own_database(postgres_url, "comity_endpoints"))
        _poll_fast(fed.gateway_config, "gateway")
        text = gateway_on_postgres(fed.gateway_config.read_text(), url)
        ports = [port_of(fed.layout.gateway.endpoint), free_ports(1)[0]]
        configs = replica_configs(fed.gateway_config, text, ports)
        logs_dir = fed.directory / "logs"
        logs_dir.mkdir()
        logs = {"A": logs_dir / "gateway-a.log", "B": logs_dir / "gateway-b.log"}
        logs.update({n: logs_dir / f"{n}.log" for n in fed.node_configs})
        r = Replicas(fed, original, signer, ports, configs, logs, stack)
        r.start("A")
        for node in fed.node_configs:
            r.start(node)
        r.start("B")
        yield r


async def _query(r: Replicas, replica: str, title: str) -> Outcome:
    s = next(x for x in scenarios(r.fed) if x.title.startswith(title))
    profile = load_profile(r.fed.profiles[s.agency])
    address = f"127.0.0.1:{r.ports['AB'.index(replica)]}"
    profile = dataclasses.replace(profile, address=address, replica_addresses=(), resubmissions=0)
    async with profile.async_client() as client:
        return await run_scenario(client, r.fed, s)


async def _answered(r: Replicas, replica: str, title: str, *, tries: int = 100) -> None:
    for _ in range(tries):  # a channel may still be in reconnect back-off, a leader taking over
        outcome = await _query(r, replica, title)
        if outcome.result is not None:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{title!r} through {replica} not answered: {outcome.error}")


async def test_a_replica_the_file_adds_serves_the_nodes_when_the_first_one_stops(replicas: Replicas) -> None:
    r = replicas
    await _answered(r, "A", "RCMP fetches")  # to the US node
    stop_server(r.processes["A"])
    # The US node restarts while its only known gateway is down: its witness is held.
    stop_server(r.processes["us-node"])
    await asyncio.to_thread(r.start, "us-node")
    assert "could not compare the witness state" in r.said("us-node")
    outcome = await _query(r, "B", "RCMP fetches")
    assert outcome.error is not None, "a held witness cosigned"

    endpoint = f'endpoint = "{r.fed.layout.gateway.endpoint}"\n'
    with_b = r.original.replace(endpoint, f'{endpoint}replica_endpoints = ["127.0.0.1:{r.ports[1]}"]\n', 1)
    assert with_b != r.original
    r.publish(signed_version(with_b, version=2, expires=FAR, signer=r.signer))
    for name in ("B", *r.fed.node_configs):
        await asyncio.to_thread(
            wait_for, lambda n=name: "now version 2" in r.said(n), f"{name} on version 2", 15
        )
    await _answered(r, "B", "RCMP fetches")
    assert "compared with the gateway's log: cosigning" in r.said("us-node")
    await _answered(r, "B", "FBI asks the Canadian node")
    for name in r.logs:
        assert "Traceback" not in r.said(name), r.said(name)
