"""The private hit check benchmark's parts run and report what they say (no timing asserted)."""

from __future__ import annotations

from bench.private_bench import crypto_steps, day_shards, evaluation_rate, filter_scale


def test_parts_run_and_report_sizes() -> None:
    steps = crypto_steps(3)
    assert set(steps) >= {"evaluate + DLEQ proof (node)", "baseline: Ed25519 verify"}
    assert all(v > 0 for v in steps.values())
    assert evaluation_rate(5) > 0
    (row,) = filter_scale([2000], 10)
    assert row["selectors"] == 2000
    assert 30 < row["bits_per_selector"] < 34


def test_day_segments_hold_the_same_entries_at_about_the_same_size() -> None:
    shard = day_shards(7000, 7, 5)
    assert shard["entries"] == 7000 and shard["days"] == 7
    # Seven sets of 1,000 cost the same bits per entry as one of 7,000, give or take each set's index.
    assert 0.9 < shard["shards_mb"] / shard["undated_mb"] < 1.2
    assert shard["range_test_ms"] > 0 and shard["single_test_ms"] > 0
