"""The demo federation prepared for load: quotas raised in copies of the bundles, servers in subprocesses.

The shipped bundles cap queries per investigator and per agency per day (tens to a thousand),
which a load test passes in seconds. :func:`raise_quotas` copies a bundle to a scratch folder
and raises its ``QUOTA`` thresholds, shifting the bundle's own quota test cases by the same
amount so they still test the boundary (the bundle loader runs them and refuses a bundle
whose tests fail). The shipped bundles are never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from comity.core.federation import Federation
from comity.policy.bundle import PolicyBundle
from comity.policy.pairing import shipped_bundles
from comity.sdk.demo.setup import DemoFederation, build_demo_federation

__all__ = ["BenchFederation", "ServerProcess", "prepare_federation", "raise_quotas", "start_server"]

# High enough that no benchmark reaches it, low enough to stay a plain Cedar integer.
BENCH_QUOTA = 1_000_000_000

_RULE_LIMIT = re.compile(r"(context\.quota\.(investigator|agency)_today\s*>=\s*)(\d+)")
_TEST_FACT = re.compile(r"^((investigator|agency)_queries_today\s*=\s*)(\d+)", re.MULTILINE)


def raise_quotas(source: Path, target: Path, *, limit: int = BENCH_QUOTA) -> Path:
    """Copy the bundle folder ``source`` to ``target`` with every daily quota raised to ``limit``.

    A test case whose count is within one of the old limit is moved to the same distance
    from the new one (49 of 50 becomes ``limit - 1``); counts far below it stay as they are.
    """
    shutil.copytree(source, target)
    old: dict[str, int] = {}
    for rule in (target / "rules").glob("*.cedar"):
        text = rule.read_text(encoding="utf-8")

        def bump(match: re.Match[str]) -> str:
            old[match.group(2)] = int(match.group(3))
            return f"{match.group(1)}{limit}"

        rule.write_text(_RULE_LIMIT.sub(bump, text), encoding="utf-8")
    tests = target / "tests.toml"
    if old and tests.exists():

        def shift(match: re.Match[str]) -> str:
            value, boundary = int(match.group(3)), old.get(match.group(2))
            if boundary is not None and value >= boundary - 1:
                value += limit - boundary
            return f"{match.group(1)}{value}"

        tests.write_text(_TEST_FACT.sub(shift, tests.read_text(encoding="utf-8")), encoding="utf-8")
    return target


def prepare_federation(directory: Path, *, people: int = 150, seed: int = 2026) -> DemoFederation:
    """Write the demo federation into ``directory``, its agreements made from quota-raised copies
    of the shipped bundles (in ``directory/bench-bundles``, kept in the bundle store by digest)."""
    bundles = directory / "bench-bundles"
    bundles.mkdir(parents=True)
    for bundle in shipped_bundles():
        raise_quotas(bundle.path, bundles / bundle.name)
    fed = build_demo_federation(directory, people=people, seed=seed, bundles=[bundles], shipped=False)
    name_bundles(fed, bundles)
    return fed


def name_bundles(fed: DemoFederation, bundles: Path) -> None:
    """Name, in each config's ``[policy] bundle``, the folder of the bundle its agreement decides by.

    Comity finds the same bundle by digest in the bundle store (a configured bundle is one more
    bundle there), so its decisions do not change; ``../shared/perf/floor.py``, the essential-work
    floor, reads one bundle from this key and has no agreement lookup.
    """
    folders = {b.digest: b.path for b in (PolicyBundle.load(f) for f in sorted(bundles.iterdir()))}
    federation = Federation.load(fed.layout.federation_file)
    (agreement,) = federation.agreements  # the demo's one pair of countries
    inbound = agreement.inbound or {}
    configs = [(c, inbound[fed.layout.nodes[n].country]) for n, c in fed.node_configs.items()]
    configs.append((fed.gateway_config, agreement.bundle_digest))
    for config, digest in configs:
        text = config.read_text(encoding="utf-8").replace(
            "[policy]\n", f'[policy]\nbundle = "{folders[digest]}"\n', 1
        )
        config.write_text(text, encoding="utf-8")


@dataclass
class ServerProcess:
    """A server started in a subprocess; its stderr goes to a file for diagnosis."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """The process id (its CPU is read from ``/proc/<pid>/stat``)."""
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful shutdown, so profiles are written), then SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    name: str, argv: Sequence[str], *, log: Path, ready: str = "serving on port", timeout: float = 60.0
) -> ServerProcess:
    """Start ``argv`` and wait until its stderr says ``ready``; raise with its log if it dies first."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            list(argv), stdout=subprocess.DEVNULL, stderr=sink, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    server = ServerProcess(name, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready in log.read_text(errors="replace"):
            return server
        if process.poll() is not None:
            break
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{name} did not start; its log says:\n{log.read_text(errors='replace')[-2000:]}")


def comity_command(*args: str) -> list[str]:
    """The ``comity`` CLI run by this interpreter (the console script beside it, or the module)."""
    script = Path(sys.executable).with_name("comity")
    if script.exists():
        return [sys.executable, str(script), *args]
    return [sys.executable, "-c", "from comity.sdk.cli.main import main; main()", *args]


@dataclass
class BenchFederation:
    """The demo federation with its nodes and gateway serving in subprocesses."""

    federation: DemoFederation
    gateway: ServerProcess
    nodes: dict[str, ServerProcess]

    @property
    def pids(self) -> list[int]:
        """Every server process: the gateway and both nodes."""
        return [self.gateway.pid, *(n.pid for n in self.nodes.values())]


@contextlib.contextmanager
def serving(fed: DemoFederation, *, server: Sequence[str] = ()) -> Iterator[BenchFederation]:
    """Run ``comity node serve`` per node and ``comity gateway serve`` until the block ends.

    ``server``, when given, replaces ``comity`` as the command (e.g. a profiling wrapper that
    takes the same ``<role> serve -c <config>`` arguments).
    """
    logs = fed.directory / "logs"
    logs.mkdir(exist_ok=True)

    def command(*args: str) -> list[str]:
        return [*server, *args] if server else comity_command(*args)

    nodes: dict[str, ServerProcess] = {}
    gateway: ServerProcess | None = None
    try:
        # The gateway first: a node with no witness state yet asks the gateway's log at start
        # whether it cosigned before.
        gateway = start_server(
            "gateway", command("gateway", "serve", "-c", str(fed.gateway_config)), log=logs / "gateway.log"
        )
        for node_id, config in fed.node_configs.items():
            nodes[node_id] = start_server(
                node_id, command("node", "serve", "-c", str(config)), log=logs / f"{node_id}.log"
            )
        yield BenchFederation(fed, gateway, nodes)
    finally:
        if gateway is not None:
            gateway.stop()
        for node in nodes.values():
            node.stop()


@contextlib.contextmanager
def own_database(postgres_url: str, prefix: str) -> Iterator[str]:
    """A new PostgreSQL database for one run or test (multi-process runs never share one): its URL.

    Dropped on exit, with any connection a killed server left behind."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
