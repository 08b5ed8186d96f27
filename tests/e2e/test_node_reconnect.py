"""A node back from a restart is reached again at once, not after gRPC's growing back-off."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from comity.core import errors
from comity.nodes.config import load_node_config
from comity.nodes.server import start_node
from comity.sdk.demo.run import run_scenario, running_federation, scenarios
from comity.sdk.demo.setup import build_demo_federation
from comity.sdk.profile import load_profile


@pytest.fixture(autouse=True)
def _quiet_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    # Connection-refused retries are expected here; keep the test's output readable.
    monkeypatch.setenv("GRPC_VERBOSITY", "NONE")


async def test_a_restarted_node_answers_the_next_query(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=10, seed=3)
    rcmp = next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))
    async with running_federation(fed) as running:
        us_port = fed.layout.nodes["us-node"].port
        us_node = next(h for h in running.stops if h.port == us_port)  # type: ignore[attr-defined]
        await us_node.stop(0)  # type: ignore[attr-defined]
        async with load_profile(fed.profiles["ca.rcmp"]).async_client() as client:
            down = await run_scenario(client, fed, rcmp)
            assert isinstance(down.error, errors.Unavailable), down.error
            # Down long enough for gRPC's default back-off to grow past several seconds.
            await asyncio.sleep(6.0)
            restarted = await start_node(load_node_config(fed.node_configs["us-node"]))
            running.stops.append(restarted)
            # Retries come at most about a second apart, so this query finds the node: with
            # gRPC's defaults the channel would still be waiting and the query refused.
            await asyncio.sleep(2.5)
            up = await run_scenario(client, fed, rcmp)
        assert up.result is not None, up.error
