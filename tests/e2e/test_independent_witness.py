"""An independent witness (`comity witness serve`, its own process) is asked by the gateway and counts.

The federation file lists a witness outside the governments, with a policy group of its own, so
no checkpoint counts without it: while its process is down, the log's end stays quorum pending
for that group; with it up, the gateway's witnessing loop gets its cosignature, stores it and
``comity audit verify`` names it among the quorum. It refuses to start on a lost state.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from federation_text import format2
from ngo_witness import NGO, independent_witness, serve_witness
from typer.testing import CliRunner

from comity.audit import events
from comity.sdk.cli.main import app
from comity.sdk.demo.run import RunningFederation, running_federation
from comity.sdk.demo.setup import build_demo_federation, free_ports

pytestmark = pytest.mark.asyncio

COMITY = str(Path(sys.executable).parent / "comity")


def _lose(state: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    process.wait(timeout=30)


async def _status_where(running: RunningFederation, ok: object, *, limit: float = 40.0) -> None:
    loop = running.gateway.witnessing
    assert loop is not None
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        if ok(loop.status):  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(loop.status.detail())


async def _append(running: RunningFederation, tag: str) -> int:
    entry = events.failed_event(
        query_id=f"q-{tag}", query_digest=b"\0" * 32, node="us-node", reason="TEST", at=datetime.now(UTC)
    )
    return (await running.gateway.ledger.record(entry)).tree_size


async def test_an_independent_witness_process_is_asked_and_counts_in_the_quorum(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=5, seed=17)
    (port,) = free_ports(1)
    entry, config = independent_witness(fed.directory, port)
    federation_file = fed.layout.federation_file
    federation_file.write_text(format2(federation_file.read_text()) + entry)
    state = fed.directory / "data" / "ngo-witness.db"

    async with running_federation(fed) as running:
        size = await _append(running, "before")
        # Both countries cosign, but the policy's independent group is not met yet.
        await _status_where(
            running, lambda s: s.log_size >= size and s.missing == {"independent": 1} and not s.forks
        )
        process = serve_witness(config)
        try:
            await _status_where(running, lambda s: (s.quorum_size or 0) >= size)
            cosigners = dict(await asyncio.to_thread(running.gateway.ledger.log.store.cosigners))
            assert NGO in cosigners[running.gateway.witnessing.status.quorum_size]  # type: ignore[union-attr]
            _stop(process)

            later = await _append(running, "while-down")
            await _status_where(running, lambda s: s.log_size >= later and "independent" in s.missing)
            assert (running.gateway.witnessing.status.quorum_size or 0) < later  # type: ignore[union-attr]

            process = serve_witness(config)  # its state file survived: it continues
            await _status_where(running, lambda s: (s.quorum_size or 0) >= later)
        finally:
            _stop(process)

        # A witness that lost its state refuses to start, and says why.
        _lose(state)
        lost = await asyncio.to_thread(
            subprocess.run,
            [COMITY, "witness", "serve", "--config", str(config)],
            capture_output=True,
            timeout=60,
            env={**os.environ, "GRPC_VERBOSITY": "NONE"},
        )
        assert lost.returncode != 0
        assert b"is missing, but the log shows this witness cosigned" in lost.stderr, lost.stderr

    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["audit", "verify", "--federation", str(federation_file), "--db", str(fed.audit_db)],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    assert NGO in result.output and "witness quorum on checkpoint" in result.output, result.output
