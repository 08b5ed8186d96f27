"""``python -m bench floor``: the bare proxy, Comity and the essential-work floor, in one invocation.

The floor is ``floor.py`` beside its runner ``floor_run.py`` in a folder of its own, kept apart
from this repository (``../shared/perf`` of a checkout; ``--runner`` or ``COMITY_FLOOR_RUNNER``
name it elsewhere). It is run as its README says: its runner, from this checkout, with this
checkout's bench on the path, so the three systems get federations written by the same
:func:`bench.federation.prepare_federation`, and every repeat runs the proxy, Comity and the
floor back to back.

Comity's side supplies what the floor reads: each config names the bundle of its agreement
(:func:`bench.federation.name_bundles`), since the floor loads one bundle and has no agreement
look-up. The floor builds its Cedar request once, from a template, without the facts that the
agreement's schemas now require (``justification.reused`` at the gateway, ``subject`` at the
node): with per-request schema validation (the runner's ``floor`` system) every request is
refused. The floor is therefore measured as ``floor-noschema``, Cedar without per-request
validation (Comity validates a sampled share; see docs/policy.md), whose rules that read the
missing facts are skipped as errors (they are false for this workload's query in Comity too).

Around the runner, a one-row SQLite commit (WAL, ``synchronous=FULL``) is timed in the same
scratch folder, since the latency target assumes a commit of at most 1 ms. The targets are
computed from the runner's table: throughput at c = 64 against the floor's (per repeat, each
against the proxy run just before it) and the proxy's, server CPU per query at c = 64 against
the floor's, and Comity's added p50 at c = 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.report import machine, markdown_table

__all__ = ["Row", "commit_ms", "find_runner", "main", "parse_table", "targets"]

ROOT = Path(__file__).resolve().parents[1]
RUNNER = "floor_run.py"
DEFAULT_SYSTEMS = "baseline,comity,floor-noschema"


def find_runner(explicit: str | None = None) -> Path:
    """The floor's runner: ``explicit``, ``$COMITY_FLOOR_RUNNER``, or ``shared/perf`` above this checkout."""
    named = explicit or os.environ.get("COMITY_FLOOR_RUNNER")
    if named:
        path = Path(named)
        return path / RUNNER if path.is_dir() else path
    for parent in ROOT.parents:
        candidate = parent / "shared" / "perf" / RUNNER
        if candidate.is_file():
            return candidate
    raise SystemExit(
        f"cannot find the floor's runner ({RUNNER}) in a shared/perf folder above {ROOT}; "
        "give its path with --runner or COMITY_FLOOR_RUNNER"
    )


def commit_ms(directory: Path, *, samples: int = 200) -> float:
    """Median milliseconds of a one-row insert and commit, SQLite in WAL with ``synchronous=FULL``."""
    path = directory / "commit-probe.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)")
        times = []
        for i in range(samples):
            started = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t (v) VALUES (?)", (os.urandom(64),))
            db.execute("COMMIT")
            times.append((time.perf_counter() - started) * 1000)
            if i % 50 == 49:
                db.execute("DELETE FROM t")
        return statistics.median(times)
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


@dataclass(frozen=True)
class Row:
    """One line of the runner's table: one system at one concurrency, medians over repeats."""

    concurrency: int
    system: str
    throughput: float
    p50_ms: float
    server_cpu_ms: float
    client_cpu_ms: float
    ratios: tuple[float, ...]  # throughput against the proxy run just before, per repeat
    added_p50_ms: float
    errors: int


_NUMBER = r"-?[\d.]+"
_LINE = re.compile(
    rf"^\| (\d+) \| (\S+) \| ({_NUMBER}) \| ({_NUMBER}) \| ({_NUMBER}) \| ({_NUMBER}) \| "
    rf"{_NUMBER} \(([^)]*)\) \| ({_NUMBER}) \| (\d+) \|$"
)


def parse_table(text: str) -> list[Row]:
    """The rows of the runner's Markdown table (other lines are ignored)."""
    rows = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            rows.append(
                Row(
                    concurrency=int(m[1]),
                    system=m[2],
                    throughput=float(m[3]),
                    p50_ms=float(m[4]),
                    server_cpu_ms=float(m[5]),
                    client_cpu_ms=float(m[6]),
                    ratios=tuple(float(x) for x in m[7].split(",")),
                    added_p50_ms=float(m[8]),
                    errors=int(m[9]),
                )
            )
    return rows


@dataclass(frozen=True)
class Target:
    """One target: what is compared, the measured value, the bound, and whether it is met."""

    name: str
    value: float
    bound: float
    at_most: bool

    @property
    def met(self) -> bool:
        """Whether the measured value is within the bound."""
        return self.value <= self.bound if self.at_most else self.value >= self.bound


def targets(rows: Sequence[Row], *, floor: str) -> list[Target]:
    """The issue's targets from the runner's rows (Comity against ``floor`` and the proxy)."""
    by = {(r.concurrency, r.system): r for r in rows}
    out = []
    top = max(r.concurrency for r in rows)
    comity, floor_row = by.get((top, "comity")), by.get((top, floor))
    if comity and floor_row:
        per_repeat = [c / f for c, f in zip(comity.ratios, floor_row.ratios, strict=False) if f]
        cpu = comity.server_cpu_ms / floor_row.server_cpu_ms
        out.append(
            Target(f"throughput at c = {top} × the floor's", statistics.median(per_repeat), 0.8, False)
        )
        out.append(
            Target(f"throughput at c = {top} × the proxy's", statistics.median(comity.ratios), 0.17, False)
        )
        out.append(Target(f"server CPU per query at c = {top} × the floor's", cpu, 1.25, True))
    single = by.get((1, "comity"))
    if single:
        out.append(Target("added p50 at c = 1, ms", single.added_p50_ms, 5.0, True))
    return out


def render(
    rows: Sequence[Row], found: Sequence[Target], commits: Sequence[float], load: Sequence[float]
) -> str:
    """The runner's rows, the floor-relative ratios and the targets, as Markdown."""
    systems = list(dict.fromkeys(r.system for r in rows))
    floor = next((s for s in systems if s.startswith("floor")), "")
    by = {(r.concurrency, r.system): r for r in rows}
    table = []
    for r in rows:
        f = by.get((r.concurrency, floor))
        pairs = zip(r.ratios, f.ratios, strict=False) if f else iter(())
        vs_floor = statistics.median([x / y for x, y in pairs if y] or [float("nan")])
        table.append(
            (r.concurrency, r.system, r.throughput, r.p50_ms, r.server_cpu_ms, r.client_cpu_ms,
             statistics.median(r.ratios), vs_floor, r.added_p50_ms, r.errors)
        )  # fmt: skip
    header = (
        "c", "system", "req/s", "p50 ms", "server CPU ms/req", "client CPU ms/req", "× proxy", "× floor",
        "added p50 ms", "errors",
    )  # fmt: skip
    checked = [
        (
            t.name,
            round(t.value, 3),
            ("≤ " if t.at_most else "≥ ") + f"{t.bound:g}",
            "met" if t.met else "missed",
        )
        for t in found
    ]
    lines = [
        markdown_table(header, table),
        "",
        markdown_table(("target", "measured", "bound", "met?"), checked),
        "",
        "one-row SQLite commit (WAL, synchronous=FULL), median ms, before / after the runs: "
        + " / ".join(f"{c:.2f}" for c in commits),
        "load average (1 min) before / after: " + " / ".join(f"{x:.1f}" for x in load),
    ]
    return "\n".join(lines)


def main() -> None:
    """Parse the options, run the floor's runner once, and report."""
    parser = argparse.ArgumentParser(prog="python -m bench floor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument(
        "--systems", default=DEFAULT_SYSTEMS, help="the runner's systems, default %(default)s"
    )
    parser.add_argument("--runner", help=f"path of {RUNNER} or its folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(sys.argv[1:])
    runner = find_runner(args.runner)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="comity-floor-") as tmp:
        load = [os.getloadavg()[0]]
        commits = [commit_ms(Path(tmp))]
        done = subprocess.run(
            [sys.executable, str(runner), "--seconds", str(args.seconds), "--repeats", str(args.repeats),
             "--concurrency", args.concurrency, "--systems", args.systems],
            cwd=ROOT, env={**env, "TMPDIR": tmp}, stdout=subprocess.PIPE, text=True, check=False,
        )  # fmt: skip
        commits.append(commit_ms(Path(tmp)))
        load.append(os.getloadavg()[0])
    if done.returncode != 0:
        raise SystemExit(f"the floor's runner failed (exit {done.returncode}); its output:\n{done.stdout}")
    rows = parse_table(done.stdout)
    floor = next((r.system for r in rows if r.system.startswith("floor")), "")
    found = targets(rows, floor=floor) if floor else []
    if args.json:
        data: dict[str, Any] = {
            "machine": machine(),
            "runner": str(runner),
            "rows": [asdict(r) for r in rows],
            "targets": [{**asdict(t), "met": t.met} for t in found],
            "commit_ms": commits,
            "load_average": load,
        }
        print(json.dumps(data, indent=2))
    else:
        print(render(rows, found, commits, load))
