"""Receipts over a running federation: exported by the SDK, refused until quorum, refreshed, tampered."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comity.sdk.cli.main import app
from comity.sdk.demo.run import RunningFederation, Scenario, run_scenario, scenarios
from comity.sdk.profile import load_profile
from comity.sdk.receipts import export_receipt
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")

runner = CliRunner()


def _scenario(running: RunningFederation, title_start: str) -> Scenario:
    return next(s for s in scenarios(running.federation) if s.title.startswith(title_start))


async def _invoke(args: list[str]) -> tuple[int, str]:
    result = await asyncio.to_thread(runner.invoke, app, args, env={"COLUMNS": "250"})
    return result.exit_code, result.output


async def _quorum_covers(running: RunningFederation, size: int, *, limit: float = 30.0) -> None:
    """Wait until the witnessing loop reports a quorum checkpoint of at least ``size``."""
    loop = running.gateway.witnessing
    assert loop is not None
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        if (loop.status.quorum_size or 0) >= size:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no quorum covering size {size}: {loop.status.detail()}")


async def test_an_answer_receipt_is_pending_then_refreshed_to_a_quorum_checkpoint(
    running: RunningFederation, tmp_path: Path
) -> None:
    fed = running.federation
    async with load_profile(fed.profiles["ca.rcmp"]).async_client() as client:
        outcome = await run_scenario(client, fed, _scenario(running, "RCMP fetches"))
    assert outcome.result is not None, outcome.error
    assert outcome.result.quorum_pending  # the witnesses cosign after the answer has left
    path = export_receipt(outcome.result.receipt, tmp_path / "receipt.json")
    federation = ["-f", str(fed.layout.federation_file)]

    code, out = await _invoke(["audit", "verify-receipt", str(path), *federation])
    assert code == 1 and "quorum pending" in out, out
    code, out = await _invoke(["audit", "verify-receipt", str(path), *federation, "--allow-quorum-pending"])
    assert code == 0 and "receipt verified" in out and "allowed and answered by us-node" in out, out

    await _quorum_covers(running, max(e.inclusion.tree_size for e in outcome.result.receipt.entries))
    gateway = ["--gateway", fed.layout.gateway.endpoint, "--ca", str(fed.layout.gateway.ca_cert)]
    code, out = await _invoke(["audit", "receipt", "refresh", str(path), *federation, *gateway])
    assert code == 0 and "receipt refreshed" in out, out
    code, out = await _invoke(["audit", "verify-receipt", str(path), *federation])
    assert code == 0 and "witness quorum reached" in out, out

    # Without the node's signed decision to answer (as a gateway answering around the node would
    # give it), the refreshed receipt proves no allowed disclosure: every other entry still proved.
    data = json.loads(path.read_text())
    stripped = {**data, "receipt": dict(data["receipt"])}
    stripped["receipt"]["entries"] = [
        e for e in data["receipt"]["entries"] if b'"kind":"node_decision"' not in base64.b64decode(e["entry"])
    ]
    stripped["receipt"].pop("nodeDecision")
    assert len(stripped["receipt"]["entries"]) == len(data["receipt"]["entries"]) - 1
    unallowed = tmp_path / "unallowed.json"
    unallowed.write_text(json.dumps(stripped))
    code, out = await _invoke(["audit", "verify-receipt", str(unallowed), *federation])
    assert code == 1 and "disclosed but holds no entry of the node's signed decision" in out, out

    # The refreshed file, with its node statement edited, is refused naming the statement.
    statement = pb.NodeStatement.FromString(outcome.result.receipt.node_statement.payload)
    statement.record_count += 1
    data["receipt"]["nodeStatement"]["payload"] = base64.b64encode(statement.SerializeToString()).decode()
    path.write_text(json.dumps(data))
    code, out = await _invoke(["audit", "verify-receipt", str(path), *federation])
    assert code == 1 and "node statement in the receipt is not the one the disclosure entry logged" in out, (
        out
    )


async def test_a_refusal_receipt_verifies_offline(running: RunningFederation, tmp_path: Path) -> None:
    fed = running.federation
    async with load_profile(fed.profiles["us.fbi"]).async_client() as client:
        outcome = await run_scenario(client, fed, _scenario(running, "FBI asks about a minor"))
    assert outcome.error is not None and isinstance(outcome.error.receipt, pb.Receipt)
    path = export_receipt(outcome.error.receipt, tmp_path / "refusal.json")
    args = [
        "audit",
        "verify-receipt",
        str(path),
        "-f",
        str(fed.layout.federation_file),
        "--allow-quorum-pending",
    ]
    code, out = await _invoke(args)
    assert code == 0 and "refused under the agreement" in out, out
