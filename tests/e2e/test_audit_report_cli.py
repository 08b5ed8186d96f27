"""`comity audit report` and `show` through the real entry point: zones, whole days, CSV, bad times."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from comity.sdk.demo.run import RunningFederation, run_scenario, scenarios
from comity.sdk.profile import load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")

_COMITY = Path(sys.executable).with_name("comity")


def _comity(*args: str, tz: str = "UTC") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TZ": tz}
    return subprocess.run(
        [str(_COMITY), *args], capture_output=True, text=True, check=False, env=env, timeout=120
    )


async def _log_copy(running: RunningFederation, tmp_path: Path) -> Path:
    fed = running.federation
    for s in scenarios(fed):
        if "RCMP" in s.title or "minor" in s.title:
            async with load_profile(fed.profiles[s.agency]).async_client() as client:
                await run_scenario(client, fed, s)
    copy = tmp_path / "audit.db"
    source, target = sqlite3.connect(fed.audit_db), sqlite3.connect(copy)
    source.backup(target)
    source.close()
    target.close()
    return copy


def _decided(done: subprocess.CompletedProcess[str]) -> int:
    assert done.returncode == 0, done.stdout + done.stderr
    return sum(d["queries"] for d in json.loads(done.stdout)["decisions"])


async def test_a_time_without_a_zone_means_utc_whatever_the_machines_zone(
    running: RunningFederation, tmp_path: Path
) -> None:
    db = await _log_copy(running, tmp_path)
    # An hour from now, UTC: nothing yet. Read in Tokyo's zone it would be 8 hours ago: everything.
    since = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    utc = _decided(_comity("audit", "report", "--db", str(db), "--since", since, "--json", tz="UTC"))
    tokyo = _decided(_comity("audit", "report", "--db", str(db), "--since", since, "--json", tz="Asia/Tokyo"))
    assert utc == tokyo == 0


async def test_until_a_date_includes_that_day(running: RunningFederation, tmp_path: Path) -> None:
    db = await _log_copy(running, tmp_path)
    everything = _decided(_comity("audit", "report", "--db", str(db), "--json"))
    today = datetime.now(UTC).date().isoformat()
    assert everything > 0
    assert _decided(_comity("audit", "report", "--db", str(db), "--until", today, "--json")) == everything


async def test_the_report_as_csv_counts_refusals_per_rule(running: RunningFederation, tmp_path: Path) -> None:
    db = await _log_copy(running, tmp_path)
    done = _comity("audit", "report", "--db", str(db), "--csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    by_rule = {r["rule"]: int(r["count"]) for r in rows if r["table"] == "refusals_by_rule"}
    assert by_rule.get("SERIOUS_CRIME", 0) >= 1
    assert {r["table"] for r in rows} >= {"decisions", "categories", "refusals_by_rule"}


@pytest.mark.parametrize("command", ["show", "report"])
async def test_bad_or_reversed_times_are_usage_errors_without_a_traceback(
    running: RunningFederation, tmp_path: Path, command: str
) -> None:
    db = await _log_copy(running, tmp_path)
    for args, says in (
        (["--since", "lastweek"], "not an ISO 8601 date or time"),
        (["--since", "2026-07-01", "--until", "2026-06-30"], "before --since"),
    ):
        done = _comity("audit", command, "--db", str(db), *args)
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        assert says in " ".join(done.stderr.split())
