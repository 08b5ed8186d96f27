"""Counted costs of one query: Ed25519 signs and verifies by component, durable commits by database.

The federation runs in this process (gateway and both nodes on loopback, real TLS), queries go
one at a time through the SDK's ``AsyncClient``, and two hooks count what they do:

- every ``sign`` / ``verify`` C call on a ``cryptography`` Ed25519 key (``sys.setprofile`` and
  ``threading.setprofile``, so worker threads are seen too), attributed to the component whose
  code is on the stack (client, gateway, node) and to the nearest Comity function that is not
  a signing wrapper;
- every worker-thread hop (``loop.run_in_executor``, which ``asyncio.to_thread`` uses) and every
  span begun (or skipped in an unsampled trace), by component and caller;
- every SQLite transaction that wrote something and committed (a trace callback on each
  connection), by database file. At c = 1 these commits are in series: each waits for its fsync
  (``synchronous=FULL``) before the query goes on.

The gateway's witnessing and recovery loops are not started, so the counts are the query path's
own and the same on every run; those loops' work is counted apart by :func:`witnessing_costs`
(it depends on timing). ``python -m bench costs`` prints both.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from bench.federation import prepare_federation
from bench.fullpath import client_for, query_spec
from bench.report import markdown_table
from comity.gateway.config import load_gateway_config
from comity.gateway.server import RunningGateway, start_gateway
from comity.nodes.config import load_node_config
from comity.nodes.server import start_node
from comity.sdk.demo.setup import DemoFederation

__all__ = ["QueryCosts", "count_costs", "main", "witnessing_costs"]

# Frames of these modules only wrap a key: the count goes to whoever called them.
_WRAPPERS = (
    "comity.core.keys",
    "comity.core.dsse",
    "comity.audit.note",
    "comity.audit.checkpoint",
    "comity.audit.cosignature",
)
# Component of a stack with no gateway, node or client frame (a worker thread's): by module.
_COMPONENT_OF_MODULE = {"comity.audit.witness": "node", "comity.audit.log": "gateway"}
_COMPONENTS = (("comity.gateway", "gateway"), ("comity.nodes", "node"), ("comity.sdk", "client"))
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def _target(statement: str) -> str:
    """``INSERT INTO t`` → ``INSERT t``: what a transaction wrote first."""
    words = statement.split()
    table = next((w for w in words[1:] if w.upper() not in ("INTO", "OR", "IGNORE", "REPLACE", "FROM")), "")
    return f"{words[0].upper()} {table.split('(', 1)[0]}" if words else ""


def _component(frame: FrameType | None) -> tuple[str, str]:
    """(component, caller) for the stack above a key's C call."""
    caller = ""
    fallback = ""
    f = frame
    while f is not None:
        module = str(f.f_globals.get("__name__", ""))
        if module.startswith("comity."):
            if not caller and not module.startswith(_WRAPPERS):
                caller = f"{module}.{f.f_code.co_name}"
            for prefix, name in _COMPONENTS:
                if module.startswith(prefix):
                    return name, caller
            fallback = fallback or _COMPONENT_OF_MODULE.get(module, "")
        f = f.f_back
    return fallback or "other", caller


@dataclass
class _Counters:
    active: bool = False
    ed25519: collections.Counter[tuple[str, str, str]] = field(default_factory=collections.Counter)
    commits: collections.Counter[str] = field(default_factory=collections.Counter)
    written: collections.Counter[str] = field(default_factory=collections.Counter)
    hops: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    spans: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if not self.active:
            return
        if event == "call":
            self._python_call(frame)
            return
        if event != "c_call":
            return
        name = getattr(arg, "__name__", "")
        if name not in ("sign", "verify"):
            return
        owner = type(getattr(arg, "__self__", None)).__name__
        if not owner.startswith("Ed25519"):
            return
        component, caller = _component(frame)
        with self.lock:
            self.ed25519[(component, name, caller)] += 1

    def _python_call(self, frame: FrameType) -> None:
        name = frame.f_code.co_name
        if name == "run_in_executor" and frame.f_globals.get("__name__") == "asyncio.base_events":
            counter = self.hops  # a worker-thread hop: there and back through the event loop
        elif name == "dropped_by_sampler" and frame.f_globals.get("__name__") == "comity.core.telemetry":
            counter = self.spans  # a span started, or skipped in an unsampled trace
        else:
            return
        key = _component(frame.f_back)
        with self.lock:
            counter[key] += 1

    def tracer(self, database: str) -> Callable[[str], None]:
        state: dict[str, Any] = {"explicit": False, "wrote": False, "what": ""}

        def trace(statement: str) -> None:
            words = statement.lstrip().split(None, 1)
            verb = words[0].upper() if words else ""
            if verb == "BEGIN":
                state["explicit"], state["wrote"] = True, False
            elif verb in ("COMMIT", "END"):
                if state["wrote"] and self.active:
                    with self.lock:
                        self.commits[database] += 1
                        self.written[f"{database}: {state['what']}"] += 1
                state["explicit"] = state["wrote"] = False
            elif verb == "ROLLBACK":
                state["explicit"] = state["wrote"] = False
            elif verb in _WRITES:
                if state["explicit"]:
                    if not state["wrote"]:
                        state["what"] = _target(statement)
                    state["wrote"] = True
                elif self.active:  # autocommit: the statement is its own transaction
                    with self.lock:
                        self.commits[database] += 1
                        self.written[f"{database}: {_target(statement)}"] += 1

        return trace


@contextlib.contextmanager
def _hooks(counters: _Counters) -> Iterator[None]:
    """Count on every thread and every SQLite connection opened inside the block."""
    real_connect = sqlite3.connect

    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection: sqlite3.Connection = real_connect(database, *args, **kwargs)
        name = Path(str(database)).name.split("?", 1)[0] or ":memory:"
        connection.set_trace_callback(counters.tracer(name))
        return connection

    sqlite3.connect = connect  # type: ignore[assignment]
    sqlite3.dbapi2.connect = connect  # type: ignore[assignment]
    sys.setprofile(counters.profile)
    threading.setprofile(counters.profile)
    try:
        yield
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        sqlite3.connect = real_connect
        sqlite3.dbapi2.connect = real_connect


@contextlib.asynccontextmanager
async def _federation(fed: DemoFederation, *, witnessing: bool) -> AsyncIterator[RunningGateway]:
    gateway = await start_gateway(load_gateway_config(fed.gateway_config), start_witnessing=False)
    nodes = []
    try:
        for path in fed.node_configs.values():
            nodes.append(await start_node(load_node_config(path)))
        if witnessing:
            gateway.start_background()
        yield gateway
    finally:
        await gateway.handle.stop(1.0)
        for node in nodes:
            await node.stop(1.0)


@dataclass(frozen=True)
class QueryCosts:
    """Per query (averaged over ``queries``): Ed25519 operations and durable commits."""

    queries: int
    ed25519: dict[tuple[str, str, str], float]  # (component, "sign" | "verify", caller) → per query
    commits: dict[str, float]  # database file → commits per query
    written: dict[str, float]  # "database: first statement of the transaction" → per query
    hops: dict[tuple[str, str], float]  # (component, caller) → worker-thread hops per query
    spans: dict[tuple[str, str], float]  # (component, caller) → spans begun (or skipped unsampled)

    def operations(self, component: str, op: str) -> float:
        """Signs or verifies per query by one component (client, gateway, node)."""
        return sum(n for (c, o, _), n in self.ed25519.items() if c == component and o == op)

    @property
    def commits_per_query(self) -> float:
        """Durable commits per query over all databases."""
        return sum(self.commits.values())


async def _count(
    fed: DemoFederation, *, queries: int, warmup: int, witnessing: bool, pause: float
) -> QueryCosts:
    counters = _Counters()
    with _hooks(counters):
        async with _federation(fed, witnessing=witnessing):
            client = client_for(fed)
            spec = query_spec(fed)
            try:
                # Warm the caches a long run keeps warm (token, order, keys, witness state).
                for _ in range(warmup):
                    await client.query(replace(spec, query_id=str(uuid.uuid4())))
                await asyncio.sleep(pause)
                counters.active = True
                for _ in range(queries):
                    await client.query(replace(spec, query_id=str(uuid.uuid4())))
                    await asyncio.sleep(pause)
                counters.active = False
            finally:
                await client.close()
    return QueryCosts(
        queries=queries,
        ed25519={k: n / queries for k, n in sorted(counters.ed25519.items())},
        commits={k: n / queries for k, n in sorted(counters.commits.items())},
        written={k: n / queries for k, n in sorted(counters.written.items())},
        hops={k: n / queries for k, n in sorted(counters.hops.items())},
        spans={k: n / queries for k, n in sorted(counters.spans.items())},
    )


def count_costs(fed: DemoFederation, *, queries: int = 4, warmup: int = 3) -> QueryCosts:
    """The query path's own costs, one query at a time (no witnessing or recovery loop)."""
    return asyncio.run(_count(fed, queries=queries, warmup=warmup, witnessing=False, pause=0.0))


def witnessing_costs(
    fed: DemoFederation, *, queries: int = 10, warmup: int = 3, pause: float = 0.5
) -> QueryCosts:
    """The same with the gateway's witnessing loop running, queries ``pause`` seconds apart.

    The difference from :func:`count_costs` is what the loop adds per query at that pace.
    """
    return asyncio.run(_count(fed, queries=queries, warmup=warmup, witnessing=True, pause=pause))


def render(costs: QueryCosts, title: str) -> str:
    """The counts as Markdown."""
    rows = [(c, op, caller, n) for (c, op, caller), n in costs.ed25519.items()]
    components = ("client", "gateway", "node", "other")
    totals = [(c, costs.operations(c, "sign"), costs.operations(c, "verify")) for c in components]
    return "\n".join(
        [
            f"{title} ({costs.queries} queries, one at a time)",
            "",
            markdown_table(("component", "op", "caller", "per query"), rows),
            "",
            markdown_table(("component", "signs", "verifies"), [t for t in totals if t[1] or t[2]]),
            "",
            markdown_table(("database", "durable commits per query"), list(costs.commits.items())),
            "",
            markdown_table(("database: a commit's first write", "per query"), list(costs.written.items())),
            "",
            markdown_table(
                ("component", "worker-thread hop from", "per query"), [(*k, n) for k, n in costs.hops.items()]
            ),
            "",
            markdown_table(("component", "span at", "per query"), [(*k, n) for k, n in costs.spans.items()]),
            f"\ncommits per query in all: {costs.commits_per_query:.2f}",
        ]
    )


def main() -> None:
    """``python -m bench costs [--queries N]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench costs", description=__doc__)
    parser.add_argument("--queries", type=int, default=10)
    args = parser.parse_args(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="comity-costs-") as tmp:
        path_only = count_costs(prepare_federation(Path(tmp) / "a"), queries=args.queries)
        looped = witnessing_costs(prepare_federation(Path(tmp) / "b"), queries=args.queries)
    print(render(path_only, "The query path"))
    print()
    print(render(looped, "With the gateway's witnessing loop, queries 0.5 s apart"))
