"""Data node store benchmarks, each against a baseline measured in the same run.

- Lookup latency on SQLite at growing record counts (default 10^4 and 10^6): ``RecordStore.lookup``
  of an account's records and ``hit_check``, against a raw ``sqlite3`` primary-key lookup on
  the same file (the floor for any indexed read from Python). It should stay near flat as the
  store grows, because each lookup goes through the selector index.
- Ingestion rate (records/s) on SQLite and PostgreSQL: ``load_file`` of JSON Lines
  (parse + validate + normalise + write) and ``RecordStore.put`` of ready records.
- Memory while streaming 10^5 matching records in batches, against materialising them.

Run: ``python -m bench.node_bench`` (``--sizes 10000,1000000,10000000``, ``--quick``,
``--postgres URL``). Numbers go to docs/performance-nodes.md by hand.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from comity.nodes.ingest import load_file
from comity.nodes.schema import DataCategory, Record, Selector, SelectorType
from comity.nodes.store import RecordStore
from comity.nodes.synthetic import generate

# The node's country: any code will do, the records are synthetic.
_COUNTRY = "XA"
_T0 = datetime(2025, 1, 1, tzinfo=UTC)
_PER_ACCOUNT = 4  # one subscriber record and three connection logs per account


def _records(n: int, *, start: int = 0) -> Iterator[Record]:
    """Cheap records (no Faker): account k has one subscriber record and three connection logs."""
    for i in range(start, start + n):
        account = f"ACC-{i // _PER_ACCOUNT:09d}"
        at = _T0 + timedelta(seconds=i)
        if i % _PER_ACCOUNT == 0:
            fields = {
                "account_id": account,
                "provider": "p",
                "full_name": "n",
                "email": f"user{i // _PER_ACCOUNT}@example.org",
                "created_at": at.isoformat(),
                "subject_nationality": _COUNTRY,
                "subject_residence": _COUNTRY,
            }
            yield Record(f"r{i:010d}", "subscriber_account", DataCategory.SUBSCRIBER, at, fields, "bench")
        else:
            fields = {
                "account_id": account,
                "ip_address": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
                "connected_at": at.isoformat(),
                "subject_nationality": _COUNTRY,
                "subject_residence": _COUNTRY,
            }
            yield Record(f"r{i:010d}", "ip_connection_log", DataCategory.TRAFFIC, at, fields, "bench")


def _fill(store: RecordStore, n: int, batch: int = 20_000) -> float:
    """Put n records; returns records/s."""
    began = time.perf_counter()
    for start in range(0, n, batch):
        store.put(_records(min(batch, n - start), start=start))
    return n / (time.perf_counter() - began)


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        began = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - began) / 1000)
    return out


def _p95(xs: list[float]) -> float:
    return sorted(xs)[int(len(xs) * 0.95)]


_RAW_LOOKUP = (
    "SELECT r.* FROM comity_records r WHERE r.record_id IN"
    " (SELECT record_id FROM comity_selectors WHERE selector_type = ? AND value = ?)"
    " ORDER BY r.observed_at, r.record_id LIMIT 101"
)


def _operations(
    raw: sqlite3.Connection, store: RecordStore, ids: list[str], accounts: list[str]
) -> dict[str, Callable[[], object]]:
    """One callable per measured operation, each taking the next key on every call."""
    next_id, next_raw, next_acc, next_hit = iter(ids), iter(accounts), iter(accounts), iter(accounts)
    account = int(SelectorType.ACCOUNT_ID)
    return {
        "raw sqlite3 PK lookup (baseline)": lambda: raw.execute(
            "SELECT fields FROM comity_records WHERE record_id = ?", (next(next_id),)
        ).fetchone(),
        "raw sqlite3, same lookup SQL": lambda: raw.execute(
            _RAW_LOOKUP, (account, next(next_raw))
        ).fetchall(),
        "RecordStore.lookup (4 records)": lambda: list(
            store.lookup([Selector(SelectorType.ACCOUNT_ID, next(next_acc))], limit=100)
        ),
        "RecordStore.hit_check": lambda: store.hit_check([Selector(SelectorType.ACCOUNT_ID, next(next_hit))]),
    }


def bench_lookup(sizes: list[int], repeats: int, workdir: Path) -> list[tuple[str, ...]]:
    """Rows of (records, operation, median µs, p95 µs, ratio to the raw sqlite3 PK lookup)."""
    rows: list[tuple[str, ...]] = []
    for n in sizes:
        path = workdir / f"lookup-{n}.db"
        store = RecordStore(path)
        rate = _fill(store, n)
        print(f"  built {n:,} records at {rate:,.0f}/s", flush=True)
        rng = random.Random(n)
        accounts = [f"ACC-{rng.randrange(n // _PER_ACCOUNT):09d}" for _ in range(repeats + 1)]
        ids = [f"r{rng.randrange(n):010d}" for _ in range(repeats + 1)]
        raw = sqlite3.connect(path)
        ops = _operations(raw, store, ids, accounts)
        for fn in ops.values():  # warm the caches and the pool with the first key
            fn()
        timings = {name: _timed(fn, repeats) for name, fn in ops.items()}
        base = statistics.median(next(iter(timings.values())))
        for name, xs in timings.items():
            m = statistics.median(xs)
            rows.append((f"{n:,}", name, f"{m:,.0f}", f"{_p95(xs):,.0f}", f"{m / base:.1f}x"))
        raw.close()
        store.close()
        path.unlink()
    return rows


def bench_ingest(url: str, label: str, people: int, workdir: Path) -> list[tuple[str, ...]]:
    """Rows of (store, method, records, records/s)."""
    data = generate(_COUNTRY, people, 1)
    src = data.write_jsonl(workdir / "ingest.jsonl")
    n = len(data.records)
    prefix = f"b{uuid.uuid4().hex[:8]}_"
    store = RecordStore(url, table_prefix=prefix)
    try:
        began = time.perf_counter()
        load_file(store, src, dataset="bench", region=_COUNTRY)
        jsonl_rate = n / (time.perf_counter() - began)
        began = time.perf_counter()
        load_file(store, src, dataset="bench", region=_COUNTRY)
        reload_rate = n / (time.perf_counter() - began)
        put_rate = _fill(store, 5 * n, batch=10_000)
    finally:
        store.drop()
        store.close()
    return [
        (label, "load_file JSONL (validate, normalise, write)", f"{n:,}", f"{jsonl_rate:,.0f}"),
        (label, "load_file again (every id replaced)", f"{n:,}", f"{reload_rate:,.0f}"),
        (label, "RecordStore.put (ready records)", f"{5 * n:,}", f"{put_rate:,.0f}"),
    ]


def _rss() -> int:
    """Resident memory of this process in bytes (Linux), which also sees the drivers' C buffers."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _measure_stream(store: RecordStore, label: str, method: str) -> tuple[str, ...]:
    sel = [Selector(SelectorType.ACCOUNT_ID, "ALL")]
    gc.collect()
    base, peak_rss = _rss(), 0
    tracemalloc.start()
    began = time.perf_counter()
    if method.startswith("stream"):
        count = 0
        for batch in store.lookup(sel).batches(500):
            count += len(batch)
            peak_rss = max(peak_rss, _rss() - base)
    else:
        records = list(store.lookup(sel))
        count = len(records)
        peak_rss = max(peak_rss, _rss() - base)
        del records
    seconds = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (
        label,
        method,
        f"{count:,}",
        f"{peak / 2**20:,.1f}",
        f"{peak_rss / 2**20:,.1f}",
        f"{count / seconds:,.0f}",
    )


def bench_stream_memory(stores: dict[str, str], n: int) -> list[tuple[str, ...]]:
    """Memory while streaming n matching records in batches, then while materialising them.

    tracemalloc sees Python objects only; the growth of resident memory also sees what the
    database driver buffers (a client-side cursor would hold the whole answer there). Every
    store streams before any materialises, so freed memory from a big list cannot hide a
    driver's buffer.
    """
    opened: dict[str, RecordStore] = {}
    try:
        for label, url in stores.items():
            try:
                store = RecordStore(url, table_prefix=f"m{uuid.uuid4().hex[:8]}_")
            except Exception as exc:  # a missing server skips that store, it does not end the run
                print(f"{label} skipped: {exc}")
                continue
            opened[label] = store
            for start in range(0, n, 20_000):
                store.put(
                    Record(
                        r.record_id,
                        r.record_type,
                        r.category,
                        r.observed_at,
                        {**r.fields, "account_id": "ALL"},
                        "b",
                    )
                    for r in _records(min(20_000, n - start), start=start)
                )
        return [
            _measure_stream(store, label, method)
            for method in ("stream in batches of 500", "materialise as a list")
            for label, store in opened.items()
        ]
    finally:
        for store in opened.values():
            store.drop()
            store.close()


def _table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,1000000", help="record counts for the lookup benchmark")
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument(
        "--people", type=int, default=2500, help="synthetic people for the ingestion benchmark"
    )
    parser.add_argument(
        "--stream", type=int, default=100_000, help="records for the streaming memory benchmark"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("COMITY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--parts", default="lookup,ingest,stream", help="which benchmarks to run")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the benchmark runs")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes, args.repeats, args.people, args.stream = [1000, 10_000], 200, 100, 5000
    cpu = platform.processor() or platform.machine()
    print(
        f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "lookup" in parts:
            lookup = bench_lookup(sizes, args.repeats, work)
            _table(
                "Lookup latency, SQLite (µs)",
                ("records", "operation", "median", "p95", "vs baseline"),
                lookup,
            )
        if "ingest" in parts:
            ingest = bench_ingest(str(work / "ingest.db"), "SQLite", args.people, work)
            try:
                ingest += bench_ingest(args.postgres, "PostgreSQL", args.people, work)
            except Exception as exc:  # a missing server skips that half, it does not end the run
                print(f"PostgreSQL skipped: {exc}")
            _table("Ingestion", ("store", "method", "records", "records/s"), ingest)
        if "stream" in parts:
            stream = bench_stream_memory(
                {"SQLite": str(work / "stream.db"), "PostgreSQL": args.postgres}, args.stream
            )
            header = ("store", "method", "records", "traced peak MiB", "RSS growth MiB", "records/s")
            _table("Streaming one lookup's matches", header, stream)


if __name__ == "__main__":
    main()
