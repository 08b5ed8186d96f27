"""An officer's verifier keeps the federation version it verified with and takes another file
only as that version's signed next version (or by a pin): a swapped file cannot vouch for a log."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from signed_demo import write_signed
from typer.testing import CliRunner

from comity.core.federation_sign import file_sha256
from comity.core.keys import SigningKey
from comity.sdk.cli.main import app
from comity.sdk.demo.run import RunningFederation, run_scenario, scenarios
from comity.sdk.profile import load_profile
from comity.sdk.receipts import export_receipt
from comity.sdk.result import Result

pytestmark = pytest.mark.asyncio(loop_scope="module")

runner = CliRunner()
SIGNER = SigningKey.generate("us.fbi/federation-2026")
MALLORY = SigningKey.generate("us.fbi/federation-2026")  # the signer's key id, another key


async def _cli(args: list[str | Path]) -> tuple[int, str]:
    result = await asyncio.to_thread(runner.invoke, app, [str(a) for a in args], env={"COLUMNS": "300"})
    return result.exit_code, " ".join(result.output.split())


def _release(running: RunningFederation, file: Path, version: int, signer: SigningKey) -> bytes:
    """Write ``version`` of the demo's federation to ``file``, its envelope signed by ``signer``."""
    text = running.federation.layout.federation_file.read_text()
    return write_signed(file, text, version=version, role=SIGNER, signer=signer)


def _held(state: Path) -> bytes:
    return str(json.loads(state.read_text())["federation"]).encode()


async def _traffic(running: RunningFederation) -> RunningFederation:
    await _answered(running)
    return running


async def _answered(running: RunningFederation) -> Result:
    fed = running.federation
    s = next(s for s in scenarios(fed) if "RCMP" in s.title and s.expect_allowed)
    async with load_profile(fed.profiles[s.agency]).async_client() as client:
        outcome = await run_scenario(client, fed, s)
        assert outcome.result is not None, outcome.error
        return await client.wait_for_quorum(outcome.result, within=60)


async def test_audit_verify_keeps_its_version_and_refuses_a_swapped_file(
    running: RunningFederation, tmp_path: Path
) -> None:
    traffic = await _traffic(running)
    fed = traffic.federation
    given = fed.directory / "officer-federation.toml"  # beside the demo's: its paths are relative
    state = tmp_path / "officer.state"
    verify = ["audit", "verify", "--db", fed.audit_db, "--state", state, "--federation", given]
    v1 = _release(traffic, given, 1, SIGNER)

    code, out = await _cli(verify)
    assert code == 0 and "✓ verified" in out, out
    assert "on first use: nothing checked it" in out and file_sha256(v1) in out
    assert _held(state) == v1

    # A file swapped in, signed under the signer's key id by another key: refused, nothing kept.
    _release(traffic, given, 2, MALLORY)
    code, out = await _cli(verify)
    assert code == 1 and "0 valid signature(s) by version 1's signing keys" in out, out
    assert "✓ verified" not in out and _held(state) == v1

    # The next version signed by the kept version's key: taken, and kept from now on.
    v2 = _release(traffic, given, 2, SIGNER)
    code, out = await _cli(verify)
    assert code == 0 and "signed by the threshold of the version kept before" in out, out
    assert _held(state) == v2

    # The old version again (its own valid envelope): a rollback.
    _release(traffic, given, 1, SIGNER)
    code, out = await _cli(verify)
    assert code == 1 and "not newer than the trusted version 2 (a rollback or a replay)" in out, out
    assert _held(state) == v2

    # A pin decides: a wrong one is refused, the published one re-pins.
    code, out = await _cli([*verify, "--federation-sha256", file_sha256(v2)])
    assert code == 1 and "is not the pinned" in out, out
    code, out = await _cli([*verify, "--federation-sha256", file_sha256(given.read_bytes())])
    assert code == 0 and "✓ verified" in out, out
    assert _held(state) == given.read_bytes()


async def test_the_consoles_mirror_keeps_its_version_and_refuses_a_swapped_file(
    running: RunningFederation, tmp_path: Path
) -> None:
    traffic = await _traffic(running)
    fed = traffic.federation
    given = fed.directory / "console-federation.toml"
    mirror = tmp_path / "console.db"
    sync = ["audit", "console", "--once", "--db", fed.audit_db, "--mirror", mirror, "--federation", given]
    v1 = _release(traffic, given, 1, SIGNER)

    def held() -> bytes:
        with sqlite3.connect(mirror) as db:
            return bytes(db.execute("SELECT value FROM meta WHERE key = 'federation'").fetchone()[0])

    code, out = await _cli(sync)
    assert code == 0 and "✓ verified the mirror" in out and "on first use" in out, out
    assert held() == v1
    _release(traffic, given, 2, MALLORY)
    code, out = await _cli(sync)
    assert code == 1 and "valid signature" in out and "✓ verified" not in out, out
    assert held() == v1
    v2 = _release(traffic, given, 2, SIGNER)
    code, out = await _cli(sync)
    assert code == 0 and "signed by the threshold of the version kept before" in out, out
    assert held() == v2
    # A new mirror starts on first use again, unless a pin checks that first use.
    fresh = ["audit", "console", "--once", "--db", fed.audit_db, "--mirror", tmp_path / "new.db"]
    code, out = await _cli([*fresh, "--federation", given, "--federation-sha256", file_sha256(v1)])
    assert code == 1 and "is not the pinned" in out, out
    code, out = await _cli([*fresh, "--federation", given, "--federation-sha256", file_sha256(v2)])
    assert code == 0 and "✓ verified the mirror" in out and "on first use" not in out, out


async def test_a_receipt_is_verified_under_the_kept_version_only(
    running: RunningFederation, tmp_path: Path
) -> None:
    result = await _answered(running)
    receipt = export_receipt(result.receipt, tmp_path / "receipt.json")
    fed = running.federation
    given = fed.directory / "receipt-federation.toml"
    state = tmp_path / "officer.state"
    check = ["audit", "verify-receipt", receipt, "--federation", given, "--state", state]
    v1 = _release(running, given, 1, SIGNER)
    code, out = await _cli(check)
    assert code == 0 and "✓ receipt verified" in out and "on first use" in out, out
    assert _held(state) == v1
    _release(running, given, 2, MALLORY)
    code, out = await _cli(check)
    assert code == 1 and "valid signature" in out and "✓ receipt verified" not in out, out
    assert _held(state) == v1
    v2 = _release(running, given, 2, SIGNER)
    code, out = await _cli(check)
    assert code == 0 and "signed by the threshold of the version kept before" in out, out
    assert _held(state) == v2
    # Without a state, a pin decides; a wrong one is refused.
    code, out = await _cli([*check[:5], "--federation-sha256", file_sha256(v1)])
    assert code == 1 and "is not the pinned" in out, out
