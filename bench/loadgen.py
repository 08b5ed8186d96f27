"""A closed-loop load generator: N asyncio tasks each send a request as soon as the last one ends."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bench.procstat import cpu_seconds, total_cpu_seconds

__all__ = ["LoadResult", "closed_loop", "percentile"]


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


@dataclass(frozen=True)
class LoadResult:
    """One run at one concurrency: completed requests, wall time, latencies and CPU used."""

    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: tuple[float, ...]
    server_cpu_seconds: float
    client_cpu_seconds: float
    first_error: str = ""

    @property
    def throughput(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        """Median latency."""
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0

    @property
    def p99_ms(self) -> float:
        """99th percentile latency."""
        return percentile(sorted(self.latencies_ms), 0.99)

    @property
    def server_cpu_ms_per_request(self) -> float:
        """CPU of the measured server processes per completed request."""
        return 1000 * self.server_cpu_seconds / self.requests if self.requests else 0.0

    @property
    def client_cpu_ms_per_request(self) -> float:
        """CPU of the load-generating (client) process per completed request."""
        return 1000 * self.client_cpu_seconds / self.requests if self.requests else 0.0


async def closed_loop(
    call: Callable[[], Awaitable[object]],
    *,
    concurrency: int,
    seconds: float,
    server_pids: Sequence[int],
) -> LoadResult:
    """Run ``call`` from ``concurrency`` tasks for ``seconds``; failed calls count as errors.

    Each task issues its next request when the previous one completes, so the offered load
    adapts to the system (no coordinated-omission queue builds up in the client). CPU is
    read from ``/proc`` for the server processes and for this process before and after.
    """
    latencies: list[float] = []
    errors = 0
    first_error = ""
    loop = asyncio.get_running_loop()
    deadline = 0.0

    async def worker() -> None:
        nonlocal errors, first_error
        while loop.time() < deadline:
            started = time.perf_counter()
            try:
                await call()
            except Exception as exc:  # a failed request is counted and reported, not fatal
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    server_before = total_cpu_seconds(server_pids)
    client_before = cpu_seconds(os.getpid())
    started = time.perf_counter()
    deadline = loop.time() + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return LoadResult(
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        seconds=elapsed,
        latencies_ms=tuple(latencies),
        server_cpu_seconds=total_cpu_seconds(server_pids) - server_before,
        client_cpu_seconds=cpu_seconds(os.getpid()) - client_before,
        first_error=first_error,
    )
