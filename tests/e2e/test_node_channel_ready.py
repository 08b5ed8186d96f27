"""The gateway's call to a node waits for the node's channel to connect, within the deadline
(real processes: a gateway and two nodes, the US node stopped and started again on its port).

Right after a node is back, the gateway's channel to it is still between two connection attempts;
a fail-fast call would be refused at once. Queries sent as soon as the node listens again are
answered, after SIGTERM and after SIGKILL. A node that stays down gets nothing: the query fails
with UNAVAILABLE saying the node could not be reached within the wait, and its quota count is
given back in its ``failed`` entry.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from served import port_of, start_server, stop_server

from comity.audit.events import FailedEvent, decode_event
from comity.audit.store import LogStore
from comity.core import errors
from comity.sdk.demo.run import Outcome, run_scenario, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.profile import load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The node deadline for this federation: the gateway waits up to half of it for a channel.
DEADLINE = 4


@dataclass
class Running:
    fed: DemoFederation
    logs: Path
    us_node: subprocess.Popen[bytes] | None = None

    def stop_us_node(self, how: signal.Signals) -> None:
        assert self.us_node is not None
        self.us_node.send_signal(how)
        self.us_node.wait(timeout=30)

    def start_us_node(self) -> None:
        """Start the US node again on its port (returns once it listens)."""
        port = self.fed.layout.nodes["us-node"].port
        self.us_node = start_server("node", self.fed.node_configs["us-node"], port, self.logs / "us.log")

    def failures(self) -> list[FailedEvent]:
        store = LogStore.open(f"sqlite:///{self.fed.audit_db}", create=False)
        try:
            events = [decode_event(data) for _, _, data in store.iter_entries(store.tree_size())]
        finally:
            store.close()
        return [e for e in events if isinstance(e, FailedEvent)]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    fed = build_demo_federation(Path(tmp_path_factory.mktemp("ready")), people=10, seed=7)
    with fed.gateway_config.open("a") as config:
        config.write(f"\n[limits]\nnode_deadline_seconds = {DEADLINE}\n")
    logs = fed.directory / "logs"
    logs.mkdir()
    running = Running(fed, logs)
    gateway_port = port_of(fed.layout.gateway.endpoint)
    processes = [start_server("gateway", fed.gateway_config, gateway_port, logs / "gateway.log")]
    try:
        ca_port = fed.layout.nodes["ca-node"].port
        processes.append(start_server("node", fed.node_configs["ca-node"], ca_port, logs / "ca.log"))
        running.start_us_node()
        yield running
    finally:
        for process in [*processes, running.us_node]:
            if process is not None:
                stop_server(process)


async def _steady(federation: Running) -> None:
    """Once the federation answers (the first queries may race the nodes' start), as in steady use."""
    if federation.us_node is None or federation.us_node.poll() is not None:
        federation.start_us_node()  # left down by a test that failed
    for _ in range(50):
        if (await _rcmp_fetch(federation)).result is not None:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the federation never answered")


async def _rcmp_fetch(federation: Running) -> Outcome:
    s = next(x for x in scenarios(federation.fed) if x.title.startswith("RCMP fetches"))
    async with load_profile(federation.fed.profiles["ca.rcmp"]).async_client() as client:
        return await run_scenario(client, federation.fed, s)


async def test_a_node_that_stays_down_is_unavailable_within_the_deadline_and_costs_no_quota(
    federation: Running,
) -> None:
    await _steady(federation)
    federation.stop_us_node(signal.SIGKILL)

    down = await _rcmp_fetch(federation)
    assert isinstance(down.error, errors.Unavailable), down.error
    assert f"node 'us-node' could not be reached within {DEADLINE / 2:g} s" in down.error.message
    assert "nothing was sent" in down.error.message
    assert "daily quota" in down.error.diagnostics()
    [failed] = federation.failures()
    assert failed.node == "us-node" and failed.reason == "UNAVAILABLE"
    assert failed.quota_released  # nothing reached the node, so the query does not count

    federation.start_us_node()
    # The channel was trying to reconnect while the node was down: the next query is answered.
    up = await _rcmp_fetch(federation)
    assert up.result is not None, up.error


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_queries_sent_as_soon_as_a_restarted_node_listens_are_answered(
    federation: Running, how: signal.Signals
) -> None:
    await _steady(federation)
    before = len(federation.failures())
    federation.stop_us_node(how)
    # A query while it is down puts the gateway's channel into its reconnect back-off.
    down = await _rcmp_fetch(federation)
    assert isinstance(down.error, errors.Unavailable), down.error

    federation.start_us_node()
    answered = [await _rcmp_fetch(federation) for _ in range(3)]
    assert [o.error for o in answered] == [None, None, None]
    # Only the query sent while the node was down failed: none after it listened again.
    assert len(federation.failures()) == before + 1
