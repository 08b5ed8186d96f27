"""`comity demo --countries us,ca,gb`: an agreement per pair that has one, a refusal for the pair
without, and one log whose checkpoint every country's node cosigns."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comity.core.federation import Federation
from comity.sdk.cli.main import app
from comity.sdk.demo.more_countries import parse_countries

COMITY = str(Path(sys.executable).parent / "comity")


def _said(text: str) -> str:
    return " ".join(text.split())


def test_the_three_country_demo_decides_each_pair_and_all_three_nodes_witness_one_log(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["demo", "--countries", "us,ca,gb", "--dir", str(tmp_path), "--people", "30", "--seed", "7"],
        env={"COLUMNS": "250"},
    )
    out = _said(result.output)
    assert result.exit_code == 0, result.output
    assert "(unexpected!)" not in out
    assert "agreement us-ca-agreement: US – CA" in out and "agreement us-gb-agreement: US – GB" in out
    assert "no agreement between CA and GB: their queries are refused" in out
    # A query on each pair with an agreement, both ways for the new one; the pair without is refused.
    assert "ca.rcmp → us-node ALLOWED" in out and "us.fbi → ca-node ALLOWED" in out
    assert "gb.nca → us-node ALLOWED" in out and "us.fbi → gb-node ALLOWED" in out
    assert "gb.nca → ca-node REFUSED NO_AGREEMENT" in out
    assert "no agreement between GB and CA is in force" in out
    assert "cosigned by a node of every member country, US (us-node), CA (ca-node), GB (gb-node)" in out
    # The officer who verifies through the gateway reads only their own agreements' entries.
    assert re.search(r"\d+ of them withheld from [A-Z]{2}'s officers", out), out

    # Checked again from outside the demo: the log's newest checkpoint has a quorum, and the
    # checkpoint is cosigned by each of the three nodes.
    fed = Federation.load(tmp_path / "federation.toml")
    assert {g.country for g in fed.witness_policy.groups} == {"US", "CA", "GB"}
    assert all(g.threshold == len(g.witnesses) for g in fed.witness_policy.groups)
    verify = [COMITY, "audit", "verify", "--db", str(tmp_path / "data" / "audit.db")]
    verify += ["--federation", str(tmp_path / "federation.toml"), "--state", str(tmp_path / "officer.state")]
    done = subprocess.run(
        verify,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    verified = _said(done.stdout)
    size = re.search(r"verified (\d+) entries", verified)
    quorum = re.search(r"witness quorum on checkpoint (\d+): cosigned by ((?:[\w-]+, )*[\w-]+)", verified)
    assert size and quorum, verified
    assert quorum[1] == size[1]  # the end of the log
    assert set(quorum[2].split(", ")) == {"us-node", "ca-node", "gb-node"}


@pytest.mark.parametrize(
    ("countries", "words"),
    [
        ("us,gb", "--countries must begin with us,ca"),
        ("us,ca,g1", "'G1' is not a country code"),
        ("us,ca,gb,gb", "names a country twice"),
    ],
)
def test_countries_the_demo_cannot_run_are_refused_in_words(countries: str, words: str) -> None:
    result = CliRunner().invoke(app, ["demo", "--countries", countries], env={"COLUMNS": "250"})
    assert result.exit_code == 1 and words in _said(result.output), result.output
    assert "Traceback" not in result.output


def test_the_default_is_the_two_country_demo() -> None:
    assert parse_countries("us,ca") == ("US", "CA")
    assert parse_countries(" us , CA ,gb") == ("US", "CA", "GB")
