"""A witness never forgets silently: a node with lost or stale witness state refuses to start."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from comity.audit import events
from comity.nodes.config import load_node_config
from comity.nodes.server import start_node
from comity.nodes.witness_state import WitnessStateError
from comity.sdk.demo.run import RunningFederation, running_federation
from comity.sdk.demo.setup import build_demo_federation

pytestmark = pytest.mark.asyncio


async def _witnessed(running: RunningFederation, size: int) -> None:
    loop = running.gateway.witnessing
    assert loop is not None
    for _ in range(600):
        if (loop.status.quorum_size or -1) >= size:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(loop.status.detail())


async def _append(running: RunningFederation) -> int:
    entry = events.failed_event(
        query_id="q-state", query_digest=b"\0" * 32, node="us-node", reason="TEST", at=datetime.now(UTC)
    )
    return (await running.gateway.ledger.record(entry)).tree_size


async def _stop_us_node(running: RunningFederation) -> None:
    port = running.federation.layout.nodes["us-node"].port
    handle = next(h for h in running.stops if h.port == port)  # type: ignore[attr-defined]
    await handle.stop(0)  # type: ignore[attr-defined]
    running.stops.remove(handle)


def _lose(state: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)


async def test_lost_or_stale_witness_state_refuses_to_start_until_reinitialised(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path, people=5, seed=3)
    config = load_node_config(fed.node_configs["us-node"])
    async with running_federation(fed) as running:
        await _witnessed(running, await _append(running))
        early = tmp_path / "early-witness.db"
        shutil.copy(config.witness_state, early)  # a backup, soon stale
        await _witnessed(running, await _append(running))
        await _stop_us_node(running)

        _lose(config.witness_state)
        with pytest.raises(WitnessStateError, match="is missing, but the log shows this witness cosigned"):
            await start_node(config)
        assert not config.witness_state.exists()  # refused: left as it was

        shutil.copy(early, config.witness_state)  # restored from the stale backup
        with pytest.raises(WitnessStateError, match="is at tree size"):
            await start_node(config)

        handle = await start_node(config, reinitialise_witness=True)
        running.stops.append(handle)
        # It continues from what it provably cosigned, and the federation keeps witnessing.
        await _witnessed(running, await _append(running))
