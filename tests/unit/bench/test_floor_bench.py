"""The floor benchmark's reading of the shared runner's table, and the targets it computes from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.floor_bench import commit_ms, find_runner, parse_table, targets
from bench.loadgen import LoadResult
from bench.run import Measurements, summarise

# The runner's table as it prints it (progress lines go to stderr; other text is ignored).
HEADER = (
    "| c | system | req/s (median) | p50 ms | server CPU ms/req | client CPU ms/req "
    "| throughput × baseline (per-repeat ratios) | added p50 ms | errors |\n"
    "|---:|---|---:|---:|---:|---:|---|---:|---:|\n"
)
TABLE = (
    HEADER
    + """\
| 1 | baseline | 600.0 | 1.50 | 1.10 | 0.30 | 1.000 (1.000, 1.000) | 0.00 | 0 |
| 1 | comity | 20.0 | 50.00 | 30.00 | 2.50 | 0.033 (0.030, 0.036) | 48.50 | 0 |
| 1 | floor-noschema | 40.0 | 20.00 | 5.00 | 1.90 | 0.067 (0.060, 0.070) | 18.50 | 0 |
| 64 | baseline | 1000.0 | 60.00 | 0.80 | 0.20 | 1.000 (1.000, 1.000) | 0.00 | 0 |
| 64 | comity | 40.0 | 1500.00 | 15.00 | 1.50 | 0.040 (0.040, 0.050) | 1440.00 | 2 |
| 64 | floor-noschema | 100.0 | 600.00 | 4.00 | 1.10 | 0.100 (0.100, 0.100) | 540.00 | 0 |
"""
)


def test_parse_table_reads_every_row() -> None:
    rows = parse_table("noise\n" + TABLE)
    assert [(r.concurrency, r.system) for r in rows][:3] == [
        (1, "baseline"),
        (1, "comity"),
        (1, "floor-noschema"),
    ]
    comity = rows[4]
    assert comity.ratios == (0.04, 0.05)
    assert comity.server_cpu_ms == 15.0
    assert comity.errors == 2


def test_targets_against_the_floor_and_the_proxy() -> None:
    found = {t.name: t for t in targets(parse_table(TABLE), floor="floor-noschema")}
    floor = found["throughput at c = 64 × the floor's"]
    assert floor.value == pytest.approx(0.45)  # median of 0.04/0.1 and 0.05/0.1
    assert not floor.met
    assert found["throughput at c = 64 × the proxy's"].value == pytest.approx(0.045)
    assert found["server CPU per query at c = 64 × the floor's"].value == pytest.approx(3.75)
    added = found["added p50 at c = 1, ms"]
    assert (added.value, added.met) == (48.5, False)


def test_find_runner_takes_a_folder_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "floor_run.py").write_text("")
    assert find_runner(str(tmp_path)) == tmp_path / "floor_run.py"
    assert find_runner(str(tmp_path / "floor_run.py")) == tmp_path / "floor_run.py"


def test_commit_probe_measures_and_cleans_up(tmp_path: Path) -> None:
    assert commit_ms(tmp_path, samples=5) > 0
    assert list(tmp_path.iterdir()) == []


def _result(c: int, rps: float) -> LoadResult:
    return LoadResult(c, int(rps), 0, 1.0, (1.0, 2.0, 3.0), 0.5, 0.1)


def test_summarise_with_a_before_system_pairs_it_by_repeat() -> None:
    m = Measurements()
    for base, full, before in ((100, 50, 25), (200, 50, 50), (100, 60, 40)):
        m.add("baseline", _result(64, base))
        m.add("comity", _result(64, full))
        m.add("before", _result(64, before))
    (row,) = summarise(m)
    assert row["ratio"]["throughput"] == 0.5
    assert row["ratio_before"]["throughput"] == 0.25  # 0.25, 0.25, 0.4
    assert row["before_ratio"]["throughput"] == 1.5  # 2.0, 1.0, 1.5
