"""Smoke tests of the benchmark harness pieces, at tiny sizes and without timing assertions."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from bench.breakdown import parse_raw
from bench.federation import raise_quotas
from bench.loadgen import LoadResult, closed_loop, percentile
from bench.procstat import cpu_seconds, rss_bytes
from bench.report import machine, markdown_table
from bench.run import Measurements, summarise
from comity.policy.bundle import PolicyBundle, bundle_path


def test_raised_quota_bundle_still_passes_its_own_tests(tmp_path: Path) -> None:
    copy = raise_quotas(bundle_path("us-ca-agreement"), tmp_path / "bundle", limit=10_000)
    rule = (copy / "rules" / "QUOTA.cedar").read_text()
    assert "investigator_today >= 10000" in rule
    assert "agency_today >= 10000" in rule
    tests = (copy / "tests.toml").read_text()
    assert "investigator_queries_today = 9999" in tests  # was 49 of 50: still one below the cap
    assert "investigator_queries_today = 3\n" in tests  # far below the cap: unchanged
    PolicyBundle.load(copy)  # runs the bundle's tests; raises if any fails


def test_shipped_bundle_is_untouched(tmp_path: Path) -> None:
    before = (bundle_path("ca-inbound") / "rules" / "QUOTA.cedar").read_text()
    raise_quotas(bundle_path("ca-inbound"), tmp_path / "bundle")
    assert (bundle_path("ca-inbound") / "rules" / "QUOTA.cedar").read_text() == before


def test_parse_raw_counts_inclusive_once_per_sample() -> None:
    raw = (
        "run (/x/comity/gateway/pipeline.py:10);step (/x/comity/gateway/pipeline.py:20);"
        "step (/x/comity/gateway/pipeline.py:20);verify (/y/cryptography/k.py:5) 3\n"
        "_worker (/usr/lib/python3.11/concurrent/futures/thread.py:80);"
        "append (/x/comity/audit/store.py:7) 2\n"
        "garbage line\n"
    )
    profile = parse_raw(raw)
    assert profile.samples == 5
    assert profile.inclusive["step (gateway/pipeline.py)"] == 3
    assert profile.self_by_package["cryptography"] == 3
    assert profile.self_by_package["comity.audit"] == 2
    assert profile.by_thread["event loop thread"] == 3
    assert profile.groups["audit log store (audit/store.py) incl. SQL"] == 2


def test_closed_loop_counts_requests_and_errors() -> None:
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls % 10 == 0:
            raise RuntimeError("every tenth fails")

    result = asyncio.run(closed_loop(call, concurrency=4, seconds=0.05, server_pids=[os.getpid()]))
    assert result.requests + result.errors == calls
    assert result.errors > 0 and result.first_error.startswith("RuntimeError")
    assert result.p99_ms >= result.p50_ms >= 0


def _result(c: int, rps: float) -> LoadResult:
    return LoadResult(c, int(rps), 0, 1.0, (1.0, 2.0, 3.0), 0.5, 0.1)


def test_summarise_pairs_runs_and_takes_medians() -> None:
    m = Measurements()
    for base, full in ((100, 50), (200, 50), (100, 60)):
        m.add("baseline", _result(16, base))
        m.add("comity", _result(16, full))
    (row,) = summarise(m)
    assert row["concurrency"] == 16
    assert row["comity"]["throughput"] == 50
    assert row["ratio"]["throughput"] == 0.5  # median of 0.5, 0.25, 0.6


def test_helpers() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([], 0.99) == 0.0
    assert cpu_seconds(os.getpid()) > 0
    assert rss_bytes(os.getpid()) > 0
    assert machine()["cores"]
    table = markdown_table(("a", "b"), [("x", 1.5)])
    assert table.splitlines()[1] == "|---|---:|"


def test_soak_slope_fits_a_line() -> None:
    from bench.soak import slope

    assert slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) == 2.0
    assert slope([(1.0, 1.0)]) == 0.0
