"""``python -m bench breakdown``: where a request's CPU goes in the gateway and the node.

The servers run as in ``python -m bench run`` (``comity gateway serve`` and ``comity node
serve`` in subprocesses, demo federation, quotas raised). After a warm-up, ``py-spy`` attaches
to the warm gateway and node for the measurement window only (start-up, imports and the policy
bundle's self-tests are not sampled) while the SDK drives the workload at a fixed concurrency.
py-spy samples, without pausing the process, whichever thread holds the GIL (``--gil``): on a
shared 2-core machine a wall-clock sampler would also count threads waiting for a core, so
only GIL-holding samples are a fair measure of Python CPU. Work in ``asyncio.to_thread``
workers and the audit writer thread is seen as well as the event loop's.

Views per process, in µs per completed request (samples / rate / requests):

- by thread: the event loop's thread vs. worker threads;
- **inclusive** time of Comity's own functions (a function counted once per sample, whatever
  its depth): the cost of each pipeline step with everything it calls;
- **self** time by where the sampled frame's code lives (Comity package, gRPC, protobuf,
  cryptography, cedarpy, SQLAlchemy, asyncio, OpenTelemetry, …) and by function.

The process's CPU from ``/proc`` minus the GIL-holding samples is shown as "native, GIL
released": gRPC's C core (TLS, HTTP/2, its own threads), SQLite while it runs a statement,
and any extension that releases the GIL.

Needs ``py-spy`` (``pip install py-spy``), permitted to attach to a process of the same user.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.federation import prepare_federation, serving
from bench.fullpath import client_for, query_spec, workload
from bench.loadgen import closed_loop
from bench.procstat import cpu_times
from bench.report import machine, markdown_table

__all__ = ["Profile", "breakdown", "parse_raw"]

RATE = 250  # samples per second per process
_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")
_PACKAGES = (
    ("/comity/gateway/", "comity.gateway"),
    ("/comity/nodes/", "comity.nodes"),
    ("/comity/audit/", "comity.audit"),
    ("/comity/policy/", "comity.policy"),
    ("/comity/core/", "comity.core"),
    ("/comity/v1/", "comity.v1 (generated)"),
    ("/comity/sdk/", "comity.sdk"),
    ("/grpc_health/", "grpc health"),
    ("/grpc/", "grpc"),
    ("/google/protobuf/", "protobuf"),
    ("/cryptography/", "cryptography"),
    ("/cedarpy/", "cedarpy"),
    ("/jwt/", "pyjwt"),
    ("/opentelemetry/", "opentelemetry"),
    ("/sqlalchemy/", "sqlalchemy"),
    ("/sqlite3/", "sqlite3"),
    ("/psycopg", "psycopg"),
    ("/asyncio/", "asyncio"),
    ("/concurrent/", "thread pool"),
    ("/threading.py", "threading"),
    ("/json/", "json"),
)


# Cost groups: a sample counts once for a group when any frame of its stack is in it
# ("within"), or when its innermost frame is ("self"), so groups never double-count a sample.
_Frame = tuple[str, str]  # (label, package)
_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("audit log store (audit/store.py) incl. SQL", "within", ("(audit/store.py)",)),
    ("replay store (core/replay.py) incl. SQL", "within", ("(core/replay.py)",)),
    ("node record store incl. SQL", "within", ("(nodes/store.py)", "(nodes/lookup.py)")),
    ("policy decision (PolicyEngine.decide) incl. Cedar", "within", ("PolicyEngine.decide (",)),
    ("witness (audit/witness.py)", "within", ("(audit/witness.py)",)),
    ("checkpoints and signed notes", "within", ("(audit/checkpoint.py)", "(audit/note.py)")),
    ("SQLAlchemy, anywhere", "within", ("sqlalchemy",)),
    ("OpenTelemetry library, self", "self", ("opentelemetry",)),
    ("asyncio and selectors, self", "self", ("asyncio", "other: selectors.py")),
    ("gRPC Python layer, self", "self", ("grpc",)),
)


def _in_group(frames: list[_Frame], kind: str, needles: tuple[str, ...]) -> bool:
    """Whether a stack belongs to a group: a needle is a package name or part of a label."""
    chosen = frames[-1:] if kind == "self" else frames
    return any(package == n or n in label for label, package in chosen for n in needles)


def _package(path: str) -> str:
    for marker, name in _PACKAGES:
        if marker in path:
            return name
    return "other: " + Path(path).name if path else "other"


def _label(frame: str) -> tuple[str, str]:
    """(``function (module)`` label, package) of one py-spy frame."""
    m = _FRAME.match(frame)
    if m is None:
        return frame, "other"
    path = m.group("file")
    module = path.rsplit("/comity/", 1)[-1] if "/comity/" in path else Path(path).name
    return f"{m.group('name')} ({module})", _package(path)


@dataclass
class Profile:
    """Aggregated samples of one process."""

    samples: int
    inclusive: Counter[str]  # Comity functions, counted once per sample
    self_by_package: Counter[str]
    self_by_function: Counter[str]
    by_thread: Counter[str]  # the event loop's thread vs. worker threads
    groups: Counter[str]


def parse_raw(text: str) -> Profile:
    """Aggregate py-spy's raw (collapsed stack) output: ``frame;frame;... count`` per line."""
    inclusive: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    by_thread: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_label(f) for f in stack.split(";")]
        for name, kind, needles in _GROUPS:
            if _in_group(frames, kind, needles):
                groups[name] += count
        # The CLI's serve command encloses everything; it says nothing about the pipeline.
        seen = {
            label for label, package in frames if package.startswith("comity.") and package != "comity.sdk"
        }
        for label in seen:
            inclusive[label] += count
        leaf, package = frames[-1]
        by_package[package] += count
        by_function[leaf] += count
        # asyncio.to_thread and the audit log's writer run on concurrent.futures workers.
        worker = any(label.startswith("_worker (") and package == "thread pool" for label, package in frames)
        by_thread["worker threads (to_thread, audit writer)" if worker else "event loop thread"] += count
    return Profile(total, inclusive, by_package, by_function, by_thread, groups)


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("the breakdown needs py-spy: pip install py-spy")
    return found


def _minus(after: tuple[float, float], before: tuple[float, float]) -> tuple[float, float]:
    return after[0] - before[0], after[1] - before[1]


def _start_py_spy(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """Sample ``pid`` for ``seconds`` into ``output`` (raw collapsed stacks), GIL holders only."""
    argv = [_py_spy(), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(RATE)]
    argv += ["--gil", "--nonblocking", "--full-filenames", "--format", "raw", "-o", str(output)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _sample(
    concurrency: int, seconds: float, work: Path
) -> tuple[dict[str, Profile], dict[str, tuple[float, float]], int]:
    fed = prepare_federation(work / "federation")
    spec = query_spec(fed)
    with serving(fed) as running:
        targets = {"gateway": running.gateway.pid, spec.target_node: running.nodes[spec.target_node].pid}
        client = client_for(fed)
        try:
            call = workload(client, spec)
            await closed_loop(call, concurrency=concurrency, seconds=2.0, server_pids=[])
            outputs = {name: work / f"{name}.txt" for name in targets}
            spies = [_start_py_spy(pid, seconds, outputs[name]) for name, pid in targets.items()]
            cpu_before = {name: cpu_times(pid) for name, pid in targets.items()}
            result = await closed_loop(
                call, concurrency=concurrency, seconds=int(seconds), server_pids=list(targets.values())
            )
            cpu = {name: _minus(cpu_times(pid), cpu_before[name]) for name, pid in targets.items()}
            for spy in spies:
                await asyncio.to_thread(spy.wait, seconds + 30)
        finally:
            await client.close()
    profiles = {name: parse_raw(path.read_text()) for name, path in outputs.items() if path.exists()}
    return profiles, cpu, result.requests


def _us(samples: int, requests: int) -> float:
    return 1e6 * samples / RATE / requests if requests else 0.0


def breakdown(*, concurrency: int = 16, seconds: float = 10.0, top: int = 15, as_json: bool = False) -> None:
    """Profile the gateway and the node under load and print the top costs per request."""
    with tempfile.TemporaryDirectory(prefix="comity-breakdown-") as tmp:
        profiles, cpu, requests = asyncio.run(_sample(concurrency, seconds, Path(tmp)))
    data: dict[str, Any] = {"machine": machine(), "concurrency": concurrency, "requests": requests}
    for name, p in profiles.items():
        sampled = _us(p.samples, requests)
        user, system = (1e6 * t / requests if requests else 0.0 for t in cpu[name])
        data[name] = {
            "cpu_us_per_request": user + system,
            "user_us_per_request": user,
            "system_us_per_request": system,
            "sampled_python_us_per_request": sampled,
            "inclusive_us": {k: _us(v, requests) for k, v in p.inclusive.most_common(top)},
            "by_thread_us": {k: _us(v, requests) for k, v in p.by_thread.most_common()},
            "groups_us": {k: _us(v, requests) for k, v in p.groups.most_common()},
            "self_by_package_us": {k: _us(v, requests) for k, v in p.self_by_package.most_common(top)},
            "self_by_function_us": {k: _us(v, requests) for k, v in p.self_by_function.most_common(top)},
        }
    if as_json:
        print(json.dumps(data, indent=2))
        return
    print(f"{requests} requests at concurrency {concurrency}; µs of CPU per request\n")
    for name in profiles:
        d = data[name]
        print(
            f"## {name}: {d['cpu_us_per_request']:,.0f} µs CPU/request measured "
            f"({d['user_us_per_request']:,.0f} user, {d['system_us_per_request']:,.0f} system); "
            f"{d['sampled_python_us_per_request']:,.0f} µs in Python holding the GIL; "
            f"{d['cpu_us_per_request'] - d['sampled_python_us_per_request']:,.0f} µs native, GIL released\n"
        )
        for title, key in (
            ("Python time holding the GIL, by thread", "by_thread_us"),
            ("cost groups (each sample once per group; groups overlap)", "groups_us"),
            ("inclusive, Comity functions", "inclusive_us"),
            ("self, by package", "self_by_package_us"),
            ("self, by function", "self_by_function_us"),
        ):
            rows = [(k, v, 100 * v / d["cpu_us_per_request"]) for k, v in d[key].items()]
            print(markdown_table((title, "µs/req", "% of CPU"), rows) + "\n")
