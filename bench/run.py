"""``python -m bench run``: Comity's full path against the two-hop baseline, in one invocation.

Order of work:

1. Write the demo federation (keys, certificates, records, configs) to a scratch folder, with
   the policy bundles' daily quotas raised in copies (see :mod:`bench.federation`).
2. Run one workload query in-process to size what crosses each hop (:mod:`bench.fullpath`).
3. Start every server in its own subprocess: the two nodes and the gateway with the demo's
   config files (``comity node serve -c``, ``comity gateway serve -c``), and the baseline's
   echo backend and proxy (:mod:`bench.baseline`) with the same certificates and sizes.
4. For each repeat, for each concurrency, run the baseline and then Comity for the same
   duration from this process (closed loop, one asyncio task per concurrent caller).
5. Report medians over repeats, and each figure's ratio to the baseline of the same repeat.

``--against DIR`` adds a third system, ``before``: Comity's servers run from the source tree in
``DIR`` (for example ``git archive <commit> | tar -x -C DIR``), on a second copy of the
federation, measured in the same repeats. A change is then measured before and after in one
invocation, each against the baseline run just before it.

CPU per request is the servers' CPU (``/proc/<pid>/stat``, all threads) over the run divided
by completed requests; the client's CPU is reported apart, since it shares the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench.baseline import baseline_call
from bench.federation import ServerProcess, prepare_federation, serving, start_server
from bench.fullpath import PayloadSizes, client_for, measure_payload_sizes, query_spec, workload
from bench.loadgen import LoadResult, closed_loop
from bench.procstat import rss_bytes
from bench.report import machine, markdown_table
from comity.core.grpcopts import channel_options
from comity.sdk.demo.setup import DemoFederation

__all__ = ["RunSettings", "run", "summarise"]

SYSTEMS = ("baseline", "comity")
BEFORE = "before"
_PACKAGES = ("proto", "core", "policy", "audit", "nodes", "gateway", "sdk")


@dataclass(frozen=True)
class RunSettings:
    """How long and how often to measure."""

    concurrency: tuple[int, ...] = (1, 16, 64)
    seconds: float = 5.0
    repeats: int = 3
    warmup_seconds: float = 2.0
    people: int = 150
    against: Path | None = None  # a source tree whose servers run as the system "before"

    @classmethod
    def quick(cls) -> RunSettings:
        """About half a minute in all: one short repeat."""
        return cls(seconds=1.5, repeats=1, warmup_seconds=1.0)


@dataclass
class Measurements:
    """Every run of one invocation, by system, concurrency and repeat."""

    runs: dict[str, dict[int, list[LoadResult]]] = field(default_factory=lambda: {s: {} for s in SYSTEMS})

    def add(self, system: str, result: LoadResult) -> None:
        """Record one run."""
        self.runs.setdefault(system, {}).setdefault(result.concurrency, []).append(result)


def tree_command(tree: Path) -> list[str]:
    """The ``comity`` CLI with the packages of the source tree ``tree`` first on the path."""
    paths = [str((tree / p).resolve()) for p in _PACKAGES]
    code = f"import sys; sys.path[:0] = {paths!r}; from comity.sdk.cli.main import main; main()"
    return [sys.executable, "-c", code]


def _baseline_servers(fed: DemoFederation, sizes: PayloadSizes, node_id: str) -> list[ServerProcess]:
    layout = fed.layout
    node, gw = layout.nodes[node_id], layout.gateway
    logs = fed.directory / "logs"
    logs.mkdir(exist_ok=True)
    common = ["--federation", str(layout.federation_file), "--node", node_id]
    module = [sys.executable, "-m", "bench.baseline"]
    backend = start_server(
        "baseline-backend",
        [*module, "backend", *common, "--key", str(node.tls_key), "--reply-bytes", str(sizes.node_result)],
        log=logs / "baseline-backend.log",
    )
    port = backend.log.read_text().rsplit("port ", 1)[1].split()[0]
    proxy = start_server(
        "baseline-proxy",
        [
            *module, "proxy", *common,
            "--cert", str(gw.tls_cert), "--key", str(gw.tls_key),
            "--client-cert", str(gw.client_cert), "--client-key", str(gw.client_key),
            "--backend", f"127.0.0.1:{port}",
            "--forward-bytes", str(sizes.execute_request), "--reply-bytes", str(sizes.gateway_result),
        ],
        log=logs / "baseline-proxy.log",
    )  # fmt: skip
    return [proxy, backend]


_Calls = dict[str, tuple[Callable[[], Awaitable[object]], list[int]]]  # system → (call, server pids)


def _describe(repeat: int, settings: RunSettings, system: str, result: LoadResult) -> str:
    line = (
        f"repeat {repeat + 1}/{settings.repeats} c={result.concurrency:<3} {system:<8} "
        f"{result.throughput:8.1f}/s p50 {result.p50_ms:7.2f} ms p99 {result.p99_ms:7.2f} ms "
        f"cpu {result.server_cpu_ms_per_request:5.2f} ms/req"
    )
    return line + (f" errors {result.errors} ({result.first_error})" if result.errors else "")


async def _repeat_runs(calls: _Calls, settings: RunSettings, progress: Callable[[str], None]) -> Measurements:
    """Alternate the systems run by run, so both see the same conditions on a shared machine."""
    results = Measurements()
    for repeat in range(settings.repeats):
        for c in settings.concurrency:
            for system, (call, pids) in calls.items():
                result = await closed_loop(call, concurrency=c, seconds=settings.seconds, server_pids=pids)
                results.add(system, result)
                progress(_describe(repeat, settings, system, result))
    return results


async def _measure(
    fed: DemoFederation, sizes: PayloadSizes, settings: RunSettings, progress: Callable[[str], None]
) -> tuple[Measurements, dict[str, float]]:
    spec = query_spec(fed)
    baseline = _baseline_servers(fed, sizes, spec.target_node)
    memory: dict[str, float] = {}
    try:
        proxy_port = baseline[0].log.read_text().rsplit("port ", 1)[1].split()[0]
        with contextlib.ExitStack() as stack:
            comity = stack.enter_context(serving(fed))
            before = None
            if settings.against is not None:
                other = prepare_federation(fed.directory.parent / "before", people=settings.people)
                before = (other, stack.enter_context(serving(other, server=tree_command(settings.against))))
            root = fed.layout.gateway.ca_cert.read_bytes()
            channel = grpc.aio.secure_channel(
                f"127.0.0.1:{proxy_port}",
                grpc.ssl_channel_credentials(root_certificates=root),
                options=channel_options(),
            )
            clients = [client_for(fed)]
            metadata = list(sizes.metadata.items())
            calls: _Calls = {
                "baseline": (
                    baseline_call(channel, request_bytes=sizes.submit_request, metadata=metadata),
                    [p.pid for p in baseline],
                ),
                "comity": (workload(clients[0], spec), comity.pids),
            }
            if before is not None:
                clients.append(client_for(before[0]))
                calls[BEFORE] = (workload(clients[1], query_spec(before[0])), before[1].pids)
            try:
                for call, pids in calls.values():
                    await closed_loop(call, concurrency=16, seconds=settings.warmup_seconds, server_pids=pids)
                memory["gateway_rss_mib_start"] = rss_bytes(comity.gateway.pid) / 2**20
                results = await _repeat_runs(calls, settings, progress)
                memory["gateway_rss_mib_end"] = rss_bytes(comity.gateway.pid) / 2**20
            finally:
                for client in clients:
                    await client.close()
                await channel.close()
    finally:
        for server in baseline:
            server.stop()
    return results, memory


def _median(results: Sequence[LoadResult], metric: str) -> float:
    return statistics.median(float(getattr(r, metric)) for r in results)


_METRICS = ("throughput", "p50_ms", "p99_ms", "server_cpu_ms_per_request", "client_cpu_ms_per_request")


def _ratios(base: Sequence[LoadResult], full: Sequence[LoadResult]) -> dict[str, float]:
    # Ratios pair each run with the baseline run just before it (same conditions).
    return {
        metric: statistics.median(
            getattr(f, metric) / getattr(b, metric)
            for b, f in zip(base, full, strict=False)
            if getattr(b, metric)
        )
        for metric in _METRICS
    }


def summarise(m: Measurements) -> list[dict[str, Any]]:
    """Per concurrency: medians of each metric per system, and each system's per-repeat ratios' medians.

    ``ratio`` and ``added_p50_ms`` are Comity's; with a ``before`` system, ``ratio_before`` and
    ``added_p50_ms_before`` are its own, and ``before_ratio`` pairs each Comity run with the
    ``before`` run of the same repeat.
    """
    rows: list[dict[str, Any]] = []
    systems = [s for s in m.runs if s != "baseline" and m.runs[s]]
    for c in sorted(m.runs["comity"]):
        base = m.runs["baseline"][c]
        row: dict[str, Any] = {"concurrency": c}
        for system in ("baseline", *systems):
            results = m.runs[system][c]
            row[system] = {metric: _median(results, metric) for metric in _METRICS}
            row[system]["requests"] = sum(r.requests for r in results)
            row[system]["errors"] = sum(r.errors for r in results)
        for system in systems:
            full = m.runs[system][c]
            suffix = "" if system == "comity" else f"_{system}"
            row[f"ratio{suffix}"] = _ratios(base, full)
            row[f"added_p50_ms{suffix}"] = statistics.median(
                f.p50_ms - b.p50_ms for b, f in zip(base, full, strict=False)
            )
        if BEFORE in systems:
            row["before_ratio"] = _ratios(m.runs[BEFORE][c], m.runs["comity"][c])
        rows.append(row)
    return rows


def render(summary: list[dict[str, Any]], memory: dict[str, float], sizes: PayloadSizes) -> str:
    """The results as Markdown: one table of both systems, one of ratios."""
    table = []
    systems = [s for s in ("baseline", "comity", BEFORE) if summary and s in summary[0]]
    for row in summary:
        for system in systems:
            s = row[system]
            table.append(
                (
                    row["concurrency"], system, s["throughput"], s["p50_ms"], s["p99_ms"],
                    s["server_cpu_ms_per_request"], s["client_cpu_ms_per_request"], s["errors"],
                )
            )  # fmt: skip
    ratios = [
        (
            row["concurrency"], system, row[f"ratio{suffix}"]["throughput"], row[f"ratio{suffix}"]["p50_ms"],
            row[f"ratio{suffix}"]["p99_ms"], row[f"ratio{suffix}"]["server_cpu_ms_per_request"],
            row[f"added_p50_ms{suffix}"],
        )
        for row in summary
        for system, suffix in (("comity", ""), (BEFORE, f"_{BEFORE}"))
        if f"ratio{suffix}" in row
    ]  # fmt: skip
    parts = [
        markdown_table(
            ("c", "system", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "client CPU ms/req", "errors"),
            table,
        ),
        "",
        markdown_table(
            ("c", "system", "throughput ×", "p50 ×", "p99 ×", "server CPU ×", "added p50 ms"),
            ratios,
        ),
        "",
        (
            f"payload bytes: client→gateway {sizes.submit_request}, gateway→node {sizes.execute_request}, "
            f"node→gateway {sizes.node_result}, gateway→client {sizes.gateway_result} "
            f"({sizes.records} records)"
        ),
    ]
    after = [
        (
            row["concurrency"], row["before_ratio"]["throughput"], row["before_ratio"]["p50_ms"],
            row["before_ratio"]["server_cpu_ms_per_request"],
        )
        for row in summary
        if "before_ratio" in row
    ]  # fmt: skip
    if after:
        parts += ["", "comity against before, same repeat (medians of the per-repeat ratios):", ""]
        parts.append(markdown_table(("c", "throughput ×", "p50 ×", "server CPU ×"), after))
    if memory:
        parts.append(
            f"gateway RSS: {memory['gateway_rss_mib_start']:.1f} MiB after warm-up, "
            f"{memory['gateway_rss_mib_end']:.1f} MiB at the end"
        )
    return "\n".join(parts)


def run(settings: RunSettings, *, as_json: bool = False) -> dict[str, Any]:
    """Measure both systems in this invocation; print a report (or JSON) and return the data."""

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="comity-bench-") as tmp:
        fed = prepare_federation(Path(tmp) / "federation", people=settings.people)
        sizes = asyncio.run(measure_payload_sizes(fed))
        progress(f"payload sizes: {sizes.submit_request}/{sizes.execute_request}/{sizes.node_result}/"
                 f"{sizes.gateway_result} bytes")  # fmt: skip
        results, memory = asyncio.run(_measure(fed, sizes, settings, progress))
    summary = summarise(results)
    data: dict[str, Any] = {
        "machine": machine(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
        "servers": "subprocesses: comity node serve, comity gateway serve; bench.baseline backend, proxy",
        "against": str(settings.against) if settings.against else None,
        "payload_bytes": {k: v for k, v in asdict(sizes).items() if k != "metadata"},
        "results": summary,
        "memory": memory,
    }
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(render(summary, memory, sizes))
    return data
