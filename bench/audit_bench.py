"""Transparency log benchmarks, each against a baseline measured in the same run.

- Appends per second on SQLite and PostgreSQL: ``TransparencyLog.append`` with group commit
  (``--concurrency`` callers, 5 ms batch interval) and unbatched (one caller, interval 0: one
  transaction, one fsync and one signed checkpoint per entry). Baseline: a raw driver insert
  of the same entry, committed per row with the same durability settings (SQLite WAL with
  synchronous=FULL; PostgreSQL default fsync), i.e. the floor for one durable write per entry.
- Proof generation time at growing log sizes (default 10^3 and 10^5; ``--sizes`` for 10^6):
  inclusion and consistency proofs read from the database, against the same proofs from a tree
  held whole in memory (the floor). Database proof time should stay nearly flat with size:
  a proof reads O(log n) stored subtree hashes. Python heap during proof generation is
  measured too, to show it does not grow with the log.

Run: ``python -m bench.audit_bench`` (``--sizes 1000,100000,1000000``, ``--quick``,
``--postgres URL``, ``--parts appends,proofs``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit.checkpoint import Checkpoint, sign_checkpoint
from comity.audit.log import TransparencyLog
from comity.audit.note import Ed25519Signer
from comity.audit.proof import consistency_proof, inclusion_proof
from comity.audit.rfc6962 import hash_leaf
from comity.audit.store import LogStore, PendingEntry
from comity.audit.tree import MemoryTree

ORIGIN = "bench.example/log"
KEY = Ed25519PrivateKey.generate()
ENTRY = b'{"kind":"decision","v":1,' + b'"x":"' + b"a" * 400 + b'"}'


async def _appends(url: str, prefix: str, *, total: int, concurrency: int, interval: float) -> float:
    log = await TransparencyLog.open(
        url, origin=ORIGIN, key=KEY, table_prefix=prefix, batch_interval=interval
    )
    try:
        per_caller = total // concurrency

        async def caller() -> None:
            for _ in range(per_caller):
                await log.append(ENTRY)

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return per_caller * concurrency / (time.perf_counter() - start)
    finally:
        await log.close()
        if url.startswith("postgresql"):
            store = LogStore.open(url, table_prefix=prefix, create=False)
            store.drop()
            store.close()


def _raw_sqlite(path: Path, total: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (idx INTEGER PRIMARY KEY, data BLOB)")
    start = time.perf_counter()
    for i in range(total):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?, ?)", (i, ENTRY))
        db.execute("COMMIT")
    rate = total / (time.perf_counter() - start)
    db.close()
    return rate


def _raw_postgres(url: str, total: int) -> float:
    import psycopg

    table = f"raw_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE TABLE {table} (idx BIGINT PRIMARY KEY, data BYTEA)")
        try:
            start = time.perf_counter()
            for i in range(total):
                db.execute(f"INSERT INTO {table} VALUES (%s, %s)", (i, ENTRY))  # autocommit: one commit each
            return total / (time.perf_counter() - start)
        finally:
            db.execute(f"DROP TABLE {table}")


def bench_appends(postgres: str | None, *, total: int, concurrency: int, repeats: int) -> None:
    print(f"\n## Appends per second ({total} entries, median of {repeats} runs)\n")
    print(
        "| backend | raw insert+commit per row (baseline) | unbatched log | batched log | batched/baseline |"
    )
    print("|---|---|---|---|---|")
    backends: list[tuple[str, Callable[[], tuple[str, str]], Callable[[], float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def sqlite_url() -> tuple[str, str]:
            return f"sqlite:///{Path(tmp) / f'log{next(counter)}.db'}", "audit_"

        backends.append(
            ("SQLite", sqlite_url, lambda: _raw_sqlite(Path(tmp) / f"raw{next(counter)}.db", total))
        )
        if postgres:
            backends.append(
                (
                    "PostgreSQL",
                    lambda: (postgres, f"b{uuid.uuid4().hex[:10]}_"),
                    lambda: _raw_postgres(postgres, total),
                )
            )
        for name, make_url, raw in backends:
            base = statistics.median([raw() for _ in range(repeats)])
            single = statistics.median(
                [
                    asyncio.run(_appends(*make_url(), total=total, concurrency=1, interval=0.0))
                    for _ in range(repeats)
                ]
            )
            batched = statistics.median(
                [
                    asyncio.run(_appends(*make_url(), total=total, concurrency=concurrency, interval=0.005))
                    for _ in range(repeats)
                ]
            )
            print(f"| {name} | {base:,.0f}/s | {single:,.0f}/s | {batched:,.0f}/s | {batched / base:.1f}x |")


def _fill(store: LogStore, size: int) -> list[bytes]:
    signer = Ed25519Signer(ORIGIN, KEY)

    def sign(n: int, root: bytes) -> bytes:
        return sign_checkpoint(Checkpoint(ORIGIN, n, root), signer)

    leaves: list[bytes] = []
    step = 5000
    for start in range(0, size, step):
        chunk = [PendingEntry(f"entry {i}".encode()) for i in range(start, min(start + step, size))]
        store.append_batch(chunk, sign)
        leaves += [hash_leaf(p.data) for p in chunk]
    return leaves


def bench_proofs(sizes: list[int], *, samples: int) -> None:
    print(f"\n## Proof generation (SQLite; median of {samples} random proofs)\n")
    print(
        "| log size | inclusion (DB) | inclusion (in memory, floor) | consistency (DB) | heap per DB proof |"
    )
    print("|---|---|---|---|---|")
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            store = LogStore.open(f"sqlite:///{Path(tmp) / f'p{size}.db'}")
            tree = MemoryTree(_fill(store, size))
            times_db, times_mem, times_cons, peaks = [], [], [], []
            for _ in range(samples):
                index = rng.randrange(size)
                first = rng.randrange(1, size)
                start = time.perf_counter()
                store.inclusion_proof(index, size)
                times_db.append(time.perf_counter() - start)
                start = time.perf_counter()
                inclusion_proof(index, size, tree)
                times_mem.append(time.perf_counter() - start)
                start = time.perf_counter()
                store.consistency_proof(first, size)
                times_cons.append(time.perf_counter() - start)
            for _ in range(5):
                tracemalloc.start()
                store.inclusion_proof(rng.randrange(size), size)
                peaks.append(tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
            consistency_proof(1, size, tree)  # the floor's consistency path, for completeness
            store.close()
            db_us, mem_us = statistics.median(times_db) * 1e6, statistics.median(times_mem) * 1e6
            cons_us, peak_kib = statistics.median(times_cons) * 1e6, statistics.median(peaks) / 1024
            print(
                f"| {size:,} | {db_us:,.0f} µs | {mem_us:,.1f} µs | {cons_us:,.0f} µs | {peak_kib:,.0f} KiB |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,100000", help="log sizes for proof timing, comma-separated")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test", help="'' to skip")
    parser.add_argument("--parts", default="appends,proofs")
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    total, repeats, samples = (256, 1, 50) if args.quick else (2048, 3, 300)
    sizes = [1000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if "appends" in parts:
        bench_appends(args.postgres or None, total=total, concurrency=args.concurrency, repeats=repeats)
    if "proofs" in parts:
        bench_proofs(sizes, samples=samples)


if __name__ == "__main__":
    main()
