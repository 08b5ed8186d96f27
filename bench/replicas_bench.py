"""Throughput of 1, 2 and 3 gateway processes over one PostgreSQL database, in one invocation.

The demo federation (quota-raised bundles) with both nodes serving in subprocesses; the log,
replay store and shared state in a PostgreSQL database of the run's own. For each count of
gateway processes, that many ``comity gateway serve`` processes are started, the load
generator's clients are spread over them (round robin, closed loop at the given concurrency),
and the processes are stopped again; the counts are interleaved over the repeats, so every
count sees the same machine and a log of similar size. Reported: medians of throughput,
p50 latency and server CPU per request (all server processes: nodes and gateways), and each
count's throughput as a ratio to one process's.

Run: ``python -m bench replicas`` (``--seconds``, ``--repeats``, ``--concurrency``, ``--quick``,
``--postgres URL``). Numbers go to docs/performance.md by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import re
import statistics
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from bench.federation import ServerProcess, comity_command, own_database, prepare_federation, start_server
from bench.fullpath import query_spec, workload, workload_profile
from bench.loadgen import LoadResult, closed_loop
from comity.sdk.demo.setup import DemoFederation, free_ports


def _gateway_configs(fed: DemoFederation, url: str, count: int) -> list[tuple[Path, int]]:
    text = fed.gateway_config.read_text()
    text = text.replace('url = "sqlite:///../data/audit.db"', f'url = "{url}"')
    text = text.replace('url = "sqlite:///../data/replay.db"', f'url = "{url}"')
    if text.count(url) != 2:
        raise RuntimeError("the demo's gateway config no longer names its SQLite log and replay store")
    first = int(fed.layout.gateway.endpoint.rsplit(":", 1)[1])
    out = []
    for i, port in enumerate([first, *free_ports(count - 1)]):
        path = fed.gateway_config.with_name(f"gateway-{i}.toml")
        path.write_text(re.sub(r'(?m)^listen = ".*"$', f'listen = "127.0.0.1:{port}"', text, count=1))
        out.append((path, port))
    return out


@contextmanager
def _gateways(configs: list[tuple[Path, int]], logs: Path, tag: str) -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    try:
        for i, (config, _port) in enumerate(configs):
            command = comity_command("gateway", "serve", "-c", str(config))
            started.append(start_server(f"gateway-{i}", command, log=logs / f"gateway-{i}-{tag}.log"))
        yield started
    finally:
        for server in started:
            server.stop()


async def _run(
    fed: DemoFederation, ports: list[int], pids: list[int], *, concurrency: int, seconds: float
) -> LoadResult:
    spec = query_spec(fed)
    profile = workload_profile(fed)
    clients = [replace(profile, address=f"127.0.0.1:{p}").async_client() for p in ports]
    calls = [workload(c, spec) for c in clients]
    turn = itertools.cycle(range(len(calls)))
    try:
        call: Callable[[], Awaitable[object]] = lambda: calls[next(turn)]()  # noqa: E731
        # Warm-up: every client's channel up, every gateway's channel to the node up.
        for warm in calls:
            for _ in range(50):
                try:
                    await warm()
                    break
                except Exception:  # a channel may still be in reconnect back-off
                    await asyncio.sleep(0.2)
        return await closed_loop(call, concurrency=concurrency, seconds=seconds, server_pids=pids)
    finally:
        for c in clients:
            await c.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--counts", default="1,2,3", help="gateway process counts")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("COMITY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--quick", action="store_true", help="short runs, to check the benchmark runs")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats = 3.0, 1
    counts = [int(c) for c in args.counts.split(",")]
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    results: dict[int, list[LoadResult]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory() as tmp, own_database(args.postgres, "comity_bench_replicas") as url:
        fed = prepare_federation(Path(tmp) / "fed")
        logs = fed.directory / "logs"
        logs.mkdir()
        configs = _gateway_configs(fed, url, max(counts))
        nodes: list[ServerProcess] = []
        try:
            # One gateway first: a node's witness reads the log's state when it starts.
            with _gateways(configs[:1], logs, "start"):
                for node_id, config in fed.node_configs.items():
                    command = comity_command("node", "serve", "-c", str(config))
                    nodes.append(start_server(node_id, command, log=logs / f"{node_id}.log"))
            for repeat in range(args.repeats):
                for n in counts:
                    with _gateways(configs[:n], logs, f"{n}-{repeat}") as gateways:
                        pids = [s.pid for s in (*nodes, *gateways)]
                        ports = [port for _, port in configs[:n]]
                        result = asyncio.run(
                            _run(fed, ports, pids, concurrency=args.concurrency, seconds=args.seconds)
                        )
                    results[n].append(result)
                    failed = f" ({result.first_error})" if result.errors else ""
                    print(
                        f"  run {repeat + 1}, {n} gateway process(es): {result.throughput:.1f} req/s, "
                        f"p50 {result.p50_ms:.1f} ms, "
                        f"{result.server_cpu_ms_per_request:.2f} ms server CPU/req, "
                        f"{result.errors} errors{failed}"
                    )
        finally:
            for node in nodes:
                node.stop()
    base = statistics.median(r.throughput for r in results[counts[0]])
    print(f"\nMedians over {args.repeats} run(s) of {args.seconds:.0f} s at concurrency {args.concurrency}:")
    print("| gateway processes | req/s | vs. 1 process | p50 ms | server CPU ms/req | errors |")
    print("|---|---|---|---|---|---|")
    for n in counts:
        rs = results[n]
        throughput = statistics.median(r.throughput for r in rs)
        p50 = statistics.median(r.p50_ms for r in rs)
        cpu = statistics.median(r.server_cpu_ms_per_request for r in rs)
        errors = sum(r.errors for r in rs)
        print(f"| {n} | {throughput:.1f} | {throughput / base:.2f} | {p50:.1f} | {cpu:.2f} | {errors} |")


if __name__ == "__main__":
    main()
