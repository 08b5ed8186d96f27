"""The private hit check benchmark's parts run and report what they say (no timing asserted)."""

from __future__ import annotations

from bench.private_bench import crypto_steps, evaluation_rate, filter_scale


def test_parts_run_and_report_sizes() -> None:
    steps = crypto_steps(3)
    assert set(steps) >= {"evaluate + DLEQ proof (node)", "baseline: Ed25519 verify"}
    assert all(v > 0 for v in steps.values())
    assert evaluation_rate(5) > 0
    (row,) = filter_scale([2000], 10)
    assert row["selectors"] == 2000
    assert 30 < row["bits_per_selector"] < 34
