"""``python -m bench soak``: does the gateway's memory stay flat over a long run?

Runs the full-path workload against the subprocess federation (as ``python -m bench run``
does) until ``queries`` have completed, sampling the gateway's resident set size from
``/proc`` about twenty times, and fits a line through the second half of the samples (the
first half includes warming caches). A flat gateway shows a slope near zero KiB per 1,000
queries; a leak shows a steady positive one.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.federation import prepare_federation, serving
from bench.fullpath import client_for, query_spec, workload
from bench.loadgen import closed_loop
from bench.procstat import rss_bytes
from bench.report import machine, markdown_table

__all__ = ["slope", "soak"]


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 for fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


async def _soak(queries: int, concurrency: int, work: Path) -> list[tuple[int, int, float]]:
    fed = prepare_federation(work / "federation")
    spec = query_spec(fed)
    samples: list[tuple[int, int, float]] = []  # (completed, errors, RSS MiB)
    with serving(fed) as running:
        client = client_for(fed)
        try:
            call = workload(client, spec)
            pid = running.gateway.pid
            done = errors = 0
            samples.append((0, 0, rss_bytes(pid) / 2**20))
            step = max(1, queries // 20)
            while done < queries:
                result = await closed_loop(call, concurrency=concurrency, seconds=1.0, server_pids=[])
                done += result.requests
                errors += result.errors
                if done >= samples[-1][0] + step or done >= queries:
                    samples.append((done, errors, rss_bytes(pid) / 2**20))
                    print(f"{done} queries, {errors} errors, gateway RSS {samples[-1][2]:.1f} MiB",
                          file=sys.stderr, flush=True)  # fmt: skip
        finally:
            await client.close()
    return samples


def soak(*, queries: int = 10_000, concurrency: int = 1, as_json: bool = False) -> dict[str, Any]:
    """Run the soak and print the samples and the fitted growth."""
    with tempfile.TemporaryDirectory(prefix="comity-soak-") as tmp:
        samples = asyncio.run(_soak(queries, concurrency, Path(tmp)))
    half = samples[len(samples) // 2 :]
    growth = 1000 * 1024 * slope([(float(q), mib) for q, _, mib in half])  # KiB per 1,000 queries
    data: dict[str, Any] = {
        "machine": machine(),
        "queries": samples[-1][0],
        "concurrency": concurrency,
        "samples": [{"queries": q, "errors": e, "rss_mib": m} for q, e, m in samples],
        "rss_growth_kib_per_1000_queries_second_half": growth,
    }
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        rows = [(q, e, f"{mib:.1f}") for q, e, mib in samples]
        print(markdown_table(("queries", "errors", "gateway RSS MiB"), rows))
        print(f"\nsecond half: {growth:+.1f} KiB per 1,000 queries")
    return data
