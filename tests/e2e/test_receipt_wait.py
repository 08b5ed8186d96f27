"""The SDK waits for the witness quorum on a fresh receipt, verifying what the gateway sends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comity.core.errors import InvalidArgument
from comity.core.federation import Federation
from comity.sdk.cli.main import app
from comity.sdk.client import AsyncClient
from comity.sdk.demo.run import RunningFederation, run_scenario, scenarios
from comity.sdk.profile import load_profile
from comity.sdk.receipts import export_receipt, log_verifier

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_fresh_receipt_is_upgraded_to_a_quorum_checkpoint_by_waiting(
    running: RunningFederation, tmp_path: Path
) -> None:
    fed = running.federation
    scenario = next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))
    async with load_profile(fed.profiles["ca.rcmp"]).async_client() as client:
        outcome = await run_scenario(client, fed, scenario)
        assert outcome.result is not None, outcome.error
        assert outcome.result.quorum_pending
        waited = await client.wait_for_quorum(outcome.result, within=30)
    assert not waited.quorum_pending and set(waited.verified.witnesses) == {"us-node", "ca-node"}  # type: ignore[union-attr]
    assert waited.records == outcome.result.records
    path = export_receipt(waited.receipt, tmp_path / "receipt.json")
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["audit", "verify-receipt", str(path), "-f", str(fed.layout.federation_file)],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0 and "witness quorum reached" in result.output, result.output


async def test_waiting_without_the_federation_file_is_refused(running: RunningFederation) -> None:
    fed = running.federation
    profile = load_profile(fed.profiles["ca.rcmp"])
    federation = Federation.load(fed.layout.federation_file)
    client = AsyncClient(
        profile.address,
        identity=profile.identity(),
        node_keys=federation.node_keys(),
        log_key=log_verifier(federation),
        root_certificates=fed.layout.gateway.ca_cert.read_bytes(),
    )
    async with client:
        scenario = next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))
        outcome = await run_scenario(client, fed, scenario)
        assert outcome.result is not None, outcome.error
        with pytest.raises(InvalidArgument, match="needs the federation file"):
            await client.wait_for_quorum(outcome.result, within=1)
