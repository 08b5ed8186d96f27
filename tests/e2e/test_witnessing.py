"""Witnessing that does not depend on queries, over the real federation on loopback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comity.audit import events
from comity.gateway.witnessing import WitnessingStatus
from comity.nodes.config import load_node_config
from comity.sdk.auditor import AuditClient
from comity.sdk.cli.main import app
from comity.sdk.demo.run import RunningFederation

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _cli(args: list[str]) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, app, args, env={"COLUMNS": "250"})
    return result.exit_code, result.output


async def _quorum_at(running: RunningFederation, size: int, *, limit: float = 30.0) -> WitnessingStatus:
    """Wait (no queries) until the loop reports a quorum checkpoint of ``size``; the bound is generous."""
    loop = running.gateway.witnessing
    assert loop is not None
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        if loop.status.quorum_size == size:
            return loop.status
        await asyncio.sleep(0.05)
    raise AssertionError(f"no quorum at size {size}: {loop.status.detail()}")


async def test_the_end_of_the_log_is_quorum_cosigned_without_further_queries(
    running: RunningFederation,
) -> None:
    ledger = running.gateway.ledger
    entry = events.failed_event(
        query_id="q-witness", query_digest=b"\0" * 32, node="ca-node", reason="TEST", at=datetime.now(UTC)
    )
    logged = await ledger.record(entry)
    status = await _quorum_at(running, logged.tree_size)
    assert not status.overdue and not status.forks
    cosigners = dict(await asyncio.to_thread(ledger.log.store.cosigners))
    assert set(cosigners[logged.tree_size]) == {"us-node", "ca-node"}


async def test_an_officer_pins_their_nodes_checkpoint_and_verifies_the_quorum_both_ways(
    running: RunningFederation, tmp_path: Path
) -> None:
    fed = running.federation
    logged = await running.gateway.ledger.record(
        events.failed_event(
            query_id="q-pin", query_digest=b"\1" * 32, node="ca-node", reason="T", at=datetime.now(UTC)
        )
    )
    await _quorum_at(running, logged.tree_size)
    state = tmp_path / "officer.state"
    witness_state = load_node_config(fed.node_configs["ca-node"]).witness_state
    federation = str(fed.layout.federation_file)
    code, out = await _cli(
        [
            "audit",
            "pin",
            "--federation",
            federation,
            "--node",
            "ca-node",
            "--witness-state",
            str(witness_state),
            "--state",
            str(state),
        ]
    )
    assert code == 0, out
    assert "pinned" in out and "cosigned by ca-node (CA)" in out
    code, out = await _cli(
        ["audit", "verify", "--federation", federation, "--db", str(fed.audit_db), "--state", str(state)]
    )
    assert code == 0, out
    assert "witness quorum on checkpoint" in out and "your own node cosigned (pinned)" in out
    remote = ["--gateway", fed.layout.gateway.endpoint, "--ca", str(fed.layout.gateway.ca_cert)]
    remote += ["--token-file", str(fed.officer_tokens["ca.rcmp"]), "--state", str(state)]
    code, out = await _cli(["audit", "verify", "--federation", federation, *remote])
    assert code == 0, out
    assert "witness quorum on checkpoint" in out and "cosigned by ca-node, us-node" in out


async def test_get_checkpoint_serves_the_newest_quorum_checkpoint_or_one_size(
    running: RunningFederation,
) -> None:
    finder = running.gateway.ledger  # the AuditLog service answers from the same log
    loop = running.gateway.witnessing
    assert loop is not None
    logged = await finder.record(
        events.failed_event(
            query_id="q-get", query_digest=b"\2" * 32, node="us-node", reason="T", at=datetime.now(UTC)
        )
    )
    await _quorum_at(running, logged.tree_size)
    client = AuditClient(
        running.federation.layout.gateway.endpoint,
        root_certificates=running.federation.layout.gateway.ca_cert.read_bytes(),
    )
    try:
        newest = await asyncio.to_thread(client.checkpoint)
        assert newest.log_size >= logged.tree_size and len(newest.cosignatures) == 2
        one = await asyncio.to_thread(client.checkpoint, 1)
        assert b"\n1\n" in one.checkpoint.signed_note
    finally:
        client.close()
