"""A standby replica judges the quorum once an interval; only the leader follows every batch.

Over one database only the leading replica asks the witnesses (``comity.gateway.leadership``);
a standby reads what the leader stored. Reading that after each of its own batches would only
cost it queries against the log database under load, so a standby's loop runs on its interval.
Real log (SQLite) and federation on loopback; two loops over the gateway's own ledger, one
leading and one standing by, with no witness to ask.
"""

from __future__ import annotations

import asyncio

import pytest

from comity.audit.quorum import Quorum
from comity.core.federation import Federation
from comity.gateway.witnessing import WitnessingLoop, WitnessingStatus
from comity.sdk.demo.run import RunningFederation

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _rounds(running: RunningFederation, *, leads: bool) -> int:
    ledger = running.gateway.ledger
    federation = Federation.load(running.federation.layout.federation_file)
    loop = WitnessingLoop(
        ledger, [], quorum=Quorum.of_federation(federation), interval=60.0, max_delay=30.0, poll=0.01,
        leads=lambda: leads,
    )  # fmt: skip
    rounds = 0
    real = loop.round

    async def counted() -> WitnessingStatus:
        nonlocal rounds
        rounds += 1
        return await real()

    loop.round = counted  # type: ignore[method-assign]
    loop.start()
    try:
        for n in range(5):
            await asyncio.sleep(0.05)
            await ledger.record(f'{{"kind": "test", "standby": {n}}}'.encode())
        await asyncio.sleep(0.05)
    finally:
        await loop.stop()
    return rounds


async def test_a_standby_runs_one_round_an_interval_and_the_leader_one_a_batch(
    running: RunningFederation,
) -> None:
    assert await _rounds(running, leads=False) == 2  # the first, due at once, and the last at stop
    assert await _rounds(running, leads=True) >= 6  # the first, one after each batch, the last
