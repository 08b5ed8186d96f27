"""The node's channel to the gateway's log waits for the gateway within its deadline, so a proof
asked for while the gateway (re)starts arrives instead of failing at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from comity.core.federation import Federation
from comity.nodes.logsync import GatewayLog
from comity.sdk.demo.run import running_federation
from comity.sdk.demo.setup import build_demo_federation


async def test_a_proof_asked_for_before_the_gateway_listens_arrives_once_it_does(tmp_path: Path) -> None:
    demo = build_demo_federation(tmp_path, people=3, seed=5)
    log = GatewayLog(Federation.load(demo.layout.federation_file), timeout=30)
    try:
        # The gateway is not up yet: the call goes into the channel's connection attempts.
        asked = asyncio.create_task(asyncio.to_thread(log.consistency, 0, 0))
        await asyncio.sleep(1.0)
        assert not asked.done()
        async with running_federation(demo):
            proof = await asyncio.wait_for(asked, timeout=30)
        assert proof == []
    finally:
        log.close()
