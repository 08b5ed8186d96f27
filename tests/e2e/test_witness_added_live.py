"""An independent witness that a new version of the federation file adds is asked without a restart.

The gateway and both nodes run on a signed version 1 whose quorum is one witness per country.
Version 2 adds an NGO's witness (``[[witnesses]]``, its own `comity witness serve` process) and
a policy group that needs it: from then on no checkpoint counts without it, and the running
gateway's witnessing loop opens a channel to it and gets its cosignatures, which reach the
quorum. Version 3 removes it again: its channel is closed and the quorum is the countries' again.
"""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ngo_witness import NGO, independent_witness, serve_witness
from signed_demo import FAR, signed_version

from comity.audit import events
from comity.core.federation_sign import envelope_path, sign_federation_file
from comity.core.keys import SigningKey
from comity.gateway.witnessing import WitnessingStatus
from comity.sdk.demo.run import RunningFederation, running_federation
from comity.sdk.demo.setup import DemoFederation, build_demo_federation, free_ports

pytestmark = pytest.mark.asyncio


def _poll_fast(config: Path, section: str) -> None:
    text = config.read_text()
    config.write_text(text.replace(f"[{section}]\n", f"[{section}]\nfederation_poll_seconds = 0.1\n", 1))


def _publish(fed: DemoFederation, text: str, signer: SigningKey) -> None:
    file = fed.layout.federation_file
    staged = file.with_name("federation.next.toml")
    staged.write_text(text)
    sign_federation_file(staged, signer)
    envelope_path(staged).replace(envelope_path(file))
    staged.replace(file)


async def _status_where(running: RunningFederation, ok: object, *, limit: float = 40.0) -> WitnessingStatus:
    loop = running.gateway.witnessing
    assert loop is not None
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        if ok(loop.status):  # type: ignore[operator]
            return loop.status
        await asyncio.sleep(0.1)
    raise AssertionError(loop.status.detail())


async def _append(running: RunningFederation, tag: str) -> int:
    entry = events.failed_event(
        query_id=f"q-{tag}", query_digest=b"\0" * 32, node="us-node", reason="TEST", at=datetime.now(UTC)
    )
    return (await running.gateway.ledger.record(entry)).tree_size


async def _cosigners(running: RunningFederation, size: int) -> set[str]:
    by_size = dict(await asyncio.to_thread(running.gateway.ledger.log.store.cosigners))
    return set(by_size[size])


async def test_a_witness_a_new_version_adds_counts_in_the_quorum_without_a_restart(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=5, seed=23)
    (port,) = free_ports(1)
    entry, config = independent_witness(fed.directory, port)
    signer = SigningKey.generate("us.fbi/federation-2026")
    file = fed.layout.federation_file
    original = file.read_text()
    file.write_text(signed_version(original, version=1, expires=FAR, signer=signer))
    sign_federation_file(file, signer)
    _poll_fast(fed.gateway_config, "gateway")
    for node_config in fed.node_configs.values():
        _poll_fast(node_config, "node")

    async with running_federation(fed) as running:
        size = await _append(running, "v1")
        await _status_where(running, lambda s: (s.quorum_size or 0) >= size and not s.forks)

        _publish(fed, signed_version(original + entry, version=2, expires=FAR, signer=signer), signer)
        process: subprocess.Popen[bytes] | None = None
        try:
            # Version 2 in use: the log's end waits for the NGO's group.
            later = await _append(running, "v2")
            await _status_where(running, lambda s: s.log_size >= later and s.missing == {"independent": 1})
            process = serve_witness(config)  # its own copy of version 2 lists it
            status = await _status_where(running, lambda s: (s.quorum_size or 0) >= later, limit=60)
            assert status.quorum_size is not None
            assert NGO in await _cosigners(running, status.quorum_size)

            # Version 3 without it: no longer asked, and the countries' witnesses are the quorum again.
            _publish(fed, signed_version(original, version=3, expires=FAR, signer=signer), signer)
            loop = running.gateway.witnessing
            assert loop is not None
            for _ in range(300):
                if not loop.quorum_ids([NGO]):  # version 3 in use: the NGO's name is no witness's
                    break
                await asyncio.sleep(0.1)
            last = await _append(running, "v3")
            status = await _status_where(running, lambda s: (s.quorum_size or 0) >= last and not s.missing)
            assert status.quorum_size is not None
            assert NGO not in await _cosigners(running, status.quorum_size)
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
