"""`comity demo`, the whole of it, as a person runs it: every step as the agreement says, log verified."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from comity.sdk.cli.main import app


def test_the_demo_runs_every_step_and_verifies_the_log(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--dir", str(tmp_path), "--people", "40", "--seed", "7"], env={"COLUMNS": "250"}
    )
    out = result.output
    assert result.exit_code == 0, out
    for step in range(1, 9):
        assert f"\n{step}. " in out
    assert out.count("ALLOWED") == 4  # two each way, and the emergency fetch
    assert "REFUSED REFUSED" in out  # the targeting rule's generic code
    assert "confirms the emergency in time" in out
    assert "PRIVATE HIT (the node's proof verified" in out  # the private hit check, step 8
    assert "audit log verified" in out
    assert "verified again by ca.rcmp/legal-1 (CA) through the gateway's AuditLog service" in out
    # The end of the log is witnessed without further queries, and both verifications see the quorum.
    assert "had every node's witness cosign checkpoint" in out
    assert out.count("0 entries quorum pending") == 2
    # What the demo left behind is a real log: the emergency's first use and its review are in it.
    with sqlite3.connect(tmp_path / "data" / "audit.db") as db:
        kinds = [bytes(row[0]) for row in db.execute("SELECT data FROM audit_entries ORDER BY idx")]
    assert sum(b'"kind":"emergency"' in k for k in kinds) == 1
    assert sum(b'"kind":"validated"' in k for k in kinds) == 1
