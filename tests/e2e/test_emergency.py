"""The emergency track end to end: first use logged, reviewed by an authority, enforced by policy."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comity.core.errors import PermissionDenied
from comity.sdk.cli.main import app
from comity.sdk.demo.run import RunningFederation, Scenario, run_scenario, scenarios
from comity.sdk.profile import load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")

runner = CliRunner()


async def _invoke(args: list[str]) -> tuple[int, str]:
    # In a thread: the servers under test run on this event loop, and the CLI blocks.
    result = await asyncio.to_thread(runner.invoke, app, args, env={"COLUMNS": "250"})
    return result.exit_code, result.output


def _emergency(running: RunningFederation, order_id: str) -> Scenario:
    s = next(x for x in scenarios(running.federation) if x.title.startswith("RCMP fetches"))
    return dataclasses.replace(s, order=dataclasses.replace(s.order, order_id=order_id, emergency=True))


async def _use(running: RunningFederation, s: Scenario) -> None:
    async with load_profile(running.federation.profiles["ca.rcmp"]).async_client() as client:
        outcome = await run_scenario(client, running.federation, s)
    assert outcome.result is not None, outcome.error


async def _validate(
    running: RunningFederation, order_id: str, out: Path, *, country: str = "ca", reject: bool = False
) -> tuple[int, str]:
    layout = running.federation.layout
    agency = layout.agencies["ca.rcmp" if country == "ca" else "us.fbi"]
    args = ["order", "validate", str(running.federation.orders[order_id]), "--key", str(agency.authority_key),
            "--authority", agency.authority, "--out", str(out)]  # fmt: skip
    return await _invoke([*args, "--reject"] if reject else args)


async def _submit(running: RunningFederation, validation: Path, agency: str = "ca.rcmp") -> tuple[int, str]:
    profile = running.federation.profiles[agency]
    return await _invoke(["order", "submit-validation", str(validation), "--profile", str(profile)])


async def _emergencies(running: RunningFederation) -> dict[str, str]:
    code, out = await _invoke(["audit", "emergencies", "--db", str(running.federation.audit_db), "--json"])
    assert code in (0, 1), out
    return {row["order_id"]: row["status"] for row in json.loads(out)}


async def test_an_emergency_order_is_logged_at_first_use_and_confirmed_by_a_judge(
    running: RunningFederation, tmp_path: Path
) -> None:
    s = _emergency(running, "CA-EMERG-1")
    await _use(running, s)
    await _use(running, s)  # a second use starts no second deadline
    assert (await _emergencies(running))["CA-EMERG-1"] == "pending"

    code, out = await _validate(running, "CA-EMERG-1", tmp_path / "v1.val")
    assert code == 0, out
    code, out = await _submit(running, tmp_path / "v1.val")
    assert code == 0, out
    assert "confirmed by ca.court.onsc, in time" in out
    assert "receipt verified" in out
    assert (await _emergencies(running))["CA-EMERG-1"] == "confirmed"

    # Reviewed once only; and only by the agency that used the order.
    code, out = await _submit(running, tmp_path / "v1.val")
    assert code == 1
    assert "already reviewed" in out
    code, out = await _submit(running, tmp_path / "v1.val", agency="us.fbi")
    assert code == 1
    assert "was used by ca.rcmp" in out


async def test_an_authority_of_the_other_country_cannot_validate(
    running: RunningFederation, tmp_path: Path
) -> None:
    await _use(running, _emergency(running, "CA-EMERG-3"))
    code, out = await _validate(running, "CA-EMERG-3", tmp_path / "us.val", country="us")
    assert code == 0, out  # signing is the authority's business; the gateway checks the country
    code, out = await _submit(running, tmp_path / "us.val")
    assert code == 1
    assert "was issued in CA" in out
    assert (await _emergencies(running))["CA-EMERG-3"] == "pending"


async def test_a_rejected_emergency_order_cannot_be_used_again(
    running: RunningFederation, tmp_path: Path
) -> None:
    s = _emergency(running, "CA-EMERG-2")
    await _use(running, s)
    code, out = await _validate(running, "CA-EMERG-2", tmp_path / "v2.val", reject=True)
    assert code == 0, out
    code, out = await _submit(running, tmp_path / "v2.val")
    assert code == 0, out
    assert "must be deleted" in out
    async with load_profile(running.federation.profiles["ca.rcmp"]).async_client() as client:
        outcome = await run_scenario(client, running.federation, s)
    assert isinstance(outcome.error, PermissionDenied)
    assert "EMERGENCY_VALIDATION" in outcome.error.rule_codes
    assert (await _emergencies(running))["CA-EMERG-2"] == "rejected"


async def test_only_emergency_orders_are_validated(running: RunningFederation, tmp_path: Path) -> None:
    s = next(x for x in scenarios(running.federation) if x.title.startswith("RCMP fetches"))
    await _use(running, s)
    code, out = await _validate(running, s.order.order_id, tmp_path / "x.val")
    assert code == 1
    assert "not on the emergency track" in out


async def test_a_tampered_validation_is_refused(running: RunningFederation, tmp_path: Path) -> None:
    await _use(running, _emergency(running, "CA-EMERG-4"))
    code, out = await _validate(running, "CA-EMERG-4", tmp_path / "v4.val")
    assert code == 0, out
    data = bytearray((tmp_path / "v4.val").read_bytes())
    data[-3] ^= 0x01  # inside the signature
    (tmp_path / "v4.val").write_bytes(bytes(data))
    code, out = await _submit(running, tmp_path / "v4.val")
    assert code == 1
    assert "signature" in out
    assert (await _emergencies(running))["CA-EMERG-4"] == "pending"


async def test_the_transparency_report_counts_emergency_orders_and_reviews(
    running: RunningFederation, tmp_path: Path
) -> None:
    await _use(running, _emergency(running, "CA-EMERG-5"))
    code, out = await _validate(running, "CA-EMERG-5", tmp_path / "v5.val")
    assert code == 0, out
    code, out = await _submit(running, tmp_path / "v5.val")
    assert code == 0, out
    code, out = await _invoke(["audit", "report", "--db", str(running.federation.audit_db), "--json"])
    assert code == 0, out
    report = json.loads(out)
    used = report["emergencies"]["ca.rcmp"]
    confirmed = {r["outcome"]: r["orders"] for r in report["emergency_reviews"] if r["agency"] == "ca.rcmp"}
    assert used >= 1 and confirmed.get("confirmed", 0) >= 1
    assert sum(confirmed.values()) <= used
    assert "CA-EMERG-5" not in out  # counts, never an order id


async def test_piped_emergencies_show_whole_order_ids_one_row_a_line(running: RunningFederation) -> None:
    order_id = "CA-EMERG-2026-ONTARIO-SUPERIOR-COURT-OF-JUSTICE-TORONTO-REGION-0042"
    await _use(running, _emergency(running, order_id))
    # The real entry point with its output on a pipe and no width given, as a script runs it.
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).with_name("comity")), "audit", "emergencies", "--db",
         str(running.federation.audit_db)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    rows = [line for line in done.stdout.splitlines() if order_id in line]
    assert len(rows) == 1, done.stdout
    assert "pending" in rows[0] and "ca.rcmp" in rows[0]
    assert "…" not in done.stdout
