"""A legal officer catches a forked log with another witness's view, without trusting the gateway.

The real federation runs and its witnesses cosign the real log. The key holder then hands an
officer a forked copy, signed with the real log key: a valid log by itself. The US node's
witness view (`comity witness latest`, read from its state file) shows what that witness really
cosigned; `comity audit verify --witness-view` refuses the fork as proven, writes the evidence,
and does not move the officer's state on to the forked tree.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comity.audit import events
from comity.audit.log import TransparencyLog
from comity.core.keys import SigningKey
from comity.gateway.config import load_gateway_config
from comity.nodes.config import load_node_config
from comity.sdk.cli.main import app
from comity.sdk.demo.run import RunningFederation

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _cli(args: list[str]) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, app, args, env={"COLUMNS": "250"})
    return result.exit_code, result.output


def _entry(tag: str) -> bytes:
    return events.failed_event(
        query_id=f"q-{tag}", query_digest=b"\0" * 32, node="us-node", reason="TEST", at=datetime.now(UTC)
    )


async def _quorum_at(running: RunningFederation, size: int) -> None:
    loop = running.gateway.witnessing
    assert loop is not None
    for _ in range(600):
        if loop.status.quorum_size == size:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(loop.status.detail())


async def _fork(running: RunningFederation, path: Path, *, keep: int, extra: int) -> None:
    """A copy of the log's first ``keep`` entries and ``extra`` others, signed with the real log key."""
    config = load_gateway_config(running.federation.gateway_config)
    origin = running.gateway.ledger.log.verifier.name
    log = await TransparencyLog.open(
        f"sqlite:///{path}", origin=origin, key=SigningKey.load(config.log_key, key_id=origin)
    )
    try:
        for entry in await running.gateway.ledger.log.entries(0, keep):
            await log.append(entry)
        for i in range(extra):
            await log.append(_entry(f"forged-{i}"))
    finally:
        await log.close()


async def test_a_witness_view_proves_a_forked_copy_of_the_log(
    running: RunningFederation, tmp_path: Path
) -> None:
    fed = running.federation
    ledger = running.gateway.ledger
    for i in range(3):
        size = (await ledger.record(_entry(f"real-{i}"))).tree_size
    await _quorum_at(running, size)
    view = tmp_path / "us-node.view"
    state = load_node_config(fed.node_configs["us-node"]).witness_state
    code, out = await _cli(["witness", "latest", "--state", str(state), "--out", str(view)])
    assert code == 0 and f"size {size}" in out, out

    federation = ["--federation", str(fed.layout.federation_file)]
    officer = tmp_path / "officer.state"
    real = ["audit", "verify", *federation, "--db", str(fed.audit_db), "--witness-view", str(view)]
    code, out = await _cli([*real, "--state", str(officer)])
    assert code == 0, out
    assert f"contains the checkpoint of size {size} that us-node cosigned" in out

    for name, keep, extra, what in [
        ("longer", size - 2, 4, f"a tree of size {size} that this log of size {size + 2} does not extend"),
        ("same-size", size - 1, 1, f"another tree of size {size} than this log's"),
        ("rolled-back", size - 1, 0, f"tree size {size}, beyond this log's {size - 1}"),
    ]:
        forked = tmp_path / f"{name}.db"
        await _fork(running, forked, keep=keep, extra=extra)
        fresh = tmp_path / f"{name}.state"
        evidence = tmp_path / f"{name}.evidence"
        alone = ["audit", "verify", *federation, "--db", str(forked)]
        alone += ["--state", str(tmp_path / f"{name}-alone.state")]
        code, out = await _cli(alone)
        assert code == 0, out  # by itself, the fork is a valid log
        code, out = await _cli(
            [*alone[:-1], str(fresh), "--witness-view", str(view), "--evidence", str(evidence)]
        )
        assert code == 1 and "PROVEN FORK: witness us-node cosigned" in out and what in out, (name, out)
        assert not fresh.exists()  # the officer's state did not accept the forked tree
        proof = evidence.read_bytes()
        assert view.read_bytes() in proof and b"# the verified log\n" in proof

    # A tampered view is refused as such, not taken as evidence.
    text = view.read_bytes().replace(b"\n\n", b"\n\nX", 1)
    tampered = tmp_path / "tampered.view"
    tampered.write_bytes(text)
    code, out = await _cli([*real[:-1], str(tampered), "--state", str(tmp_path / "t.state")])
    assert code == 1 and "the witness view does not verify" in out, out
