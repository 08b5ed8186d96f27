"""Private hit check benchmarks, each against a baseline measured in the same run.

- Per query, end to end: the demo's federation started in this process (gateway and both nodes
  on loopback, real TLS), the same selector asked as a plain HIT_CHECK (the baseline) and as a
  PRIVATE_HIT_CHECK, alternately, sequentially; median wall time of each and the ratio. The
  private figure includes verifying the node's filters, which a requester fetches once per epoch:
  it is also measured with the filters fetched beforehand.
- The VOPRF steps per selector (blind; evaluate with a DLEQ proof; verify and finalise) and one
  filter test, against an Ed25519 verify (the cost every query already pays per signature).
- Filters at scale (default 10^4, 10^6 and 10^7 selectors): building the Golomb-coded set from
  outputs, its size in bytes and bits per selector, and a requester's look-up time; the node's
  OPRF evaluation rate per selector, from which a full build's time follows.

- Day segments: the largest size split into ``--days`` segments (traffic and content filters are per
  UTC day), against one undated set of the same entries: build, size, and a requester's test of one
  selector over the whole range.

Run: ``python -m bench private`` (``--sizes 10000,1000000,10000000``, ``--queries N``, ``--days N``,
``--quick``). Numbers go to docs/performance.md and docs/performance-nodes.md by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from comity.core import voprf
from comity.core.keys import SigningKey
from comity.core.private_filter import DEFAULT_INVERSE_FP_RATE, GolombSet, selector_input

__all__ = ["main"]


def _median_us(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def crypto_steps(repeats: int) -> dict[str, float]:
    """Median µs of each VOPRF step for one selector, a filter test, and an Ed25519 verify."""
    key = voprf.generate_key_pair()
    message = selector_input("EMAIL", "someone@example.org")
    blind, element = voprf.blind(message)
    evaluated, proof = voprf.blind_evaluate(key, [element])
    golomb = GolombSet.build(hashlib.sha512(i.to_bytes(4, "big")).digest() for i in range(10_000))
    output = voprf.evaluate(key, message)
    signer = SigningKey.generate("bench")
    signature = signer.sign(b"x" * 200)
    verifier = signer.verifying_key
    return {
        "blind (requester)": _median_us(lambda: voprf.blind(message), repeats),
        "evaluate + DLEQ proof (node)": _median_us(lambda: voprf.blind_evaluate(key, [element]), repeats),
        "check blinding (gateway)": _median_us(lambda: voprf.blind_with(message, blind), repeats),
        "verify proof + finalise (requester)": _median_us(
            lambda: voprf.finalize(key.pk, [message], [blind], [element], evaluated, proof), repeats
        ),
        "filter test, 10^4 set (requester)": _median_us(lambda: golomb.contains(output), repeats),
        "baseline: Ed25519 verify": _median_us(lambda: verifier.verify(signature, b"x" * 200), repeats),
    }


def filter_scale(sizes: list[int], lookups: int) -> list[dict[str, float]]:
    """Build time, size and look-up time of a Golomb-coded set of ``n`` outputs, per size."""
    rng = random.Random(7)
    rows = []
    for n in sizes:
        modulus = n * DEFAULT_INVERSE_FP_RATE
        # Outputs are uniform: draw the mapped values directly (the VOPRF cost is measured apart).
        values = sorted({rng.randrange(modulus) for _ in range(n)})
        t0 = time.perf_counter()
        golomb = GolombSet.from_values(
            values, count=n, inverse_fp_rate=DEFAULT_INVERSE_FP_RATE, index_interval=256
        )
        build = time.perf_counter() - t0
        probes = [hashlib.sha512(rng.randbytes(16)).digest() for _ in range(lookups)]
        t0 = time.perf_counter()
        for p in probes:
            golomb.contains(p)
        lookup = (time.perf_counter() - t0) / lookups
        rows.append(
            {
                "selectors": n,
                "build_s": build,
                "bytes": len(golomb.data) + len(golomb.index),
                "bits_per_selector": (len(golomb.data) + len(golomb.index)) * 8 / n,
                "lookup_us": lookup * 1e6,
            }
        )
        del values, golomb
    return rows


def day_shards(total: int, days: int, probes: int) -> dict[str, float]:
    """``total`` (selector, day) entries as ``days`` day segments against one undated set of the same
    entries, built in this run: build time, size, and a requester's test of one selector over the
    whole range (one look-up per day segment) against one look-up in the undated set."""
    rng = random.Random(11)

    def build(n: int) -> tuple[GolombSet, float]:
        values = sorted({rng.randrange(n * DEFAULT_INVERSE_FP_RATE) for _ in range(n)})
        t0 = time.perf_counter()
        golomb = GolombSet.from_values(
            values, count=n, inverse_fp_rate=DEFAULT_INVERSE_FP_RATE, index_interval=256
        )
        return golomb, time.perf_counter() - t0

    undated, undated_build = build(total)
    shards = [build(total // days) for _ in range(days)]
    outputs = [hashlib.sha512(rng.randbytes(16)).digest() for _ in range(probes)]
    range_test: list[float] = []
    single_test: list[float] = []
    for output in outputs:
        t0 = time.perf_counter()
        for golomb, _ in shards:
            golomb.contains(output)
        range_test.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        undated.contains(output)
        single_test.append(time.perf_counter() - t0)
    return {
        "entries": total,
        "days": days,
        "undated_build_s": undated_build,
        "shards_build_s": sum(b for _, b in shards),
        "undated_mb": (len(undated.data) + len(undated.index)) / 1e6,
        "shards_mb": sum(len(g.data) + len(g.index) for g, _ in shards) / 1e6,
        "range_test_ms": statistics.median(range_test) * 1e3,
        "single_test_ms": statistics.median(single_test) * 1e3,
    }


def evaluation_rate(count: int) -> float:
    """Selectors per second the node evaluates directly (what building a filter costs per selector)."""
    key = voprf.generate_key_pair()
    messages = [selector_input("EMAIL", f"user{i}@example.org") for i in range(count)]
    t0 = time.perf_counter()
    for m in messages:
        voprf.evaluate(key, m)
    return count / (time.perf_counter() - t0)


async def per_query(queries: int) -> dict[str, float]:
    """Median ms of a plain hit check and of a private one, same selector, same federation."""
    from comity.sdk.demo.run import running_federation, scenarios
    from comity.sdk.demo.setup import build_demo_federation
    from comity.sdk.profile import load_profile
    from comity.sdk.query import QuerySpec, Selector, read_order_file

    with tempfile.TemporaryDirectory() as tmp:
        fed = build_demo_federation(Path(tmp), people=40, seed=7)
        s = next(x for x in scenarios(fed) if x.title.startswith("FBI asks the Canadian node whether"))
        order = read_order_file(fed.sign_order(s.order, now=datetime.now(UTC)))

        def spec(kind: str) -> QuerySpec:
            return QuerySpec(
                target_node=s.node,
                selectors=[Selector(t.name, s.person.selectors[t]) for t in s.order.selector_types],
                categories=[c.lower() for c in s.categories],
                kind=kind,
                case_reference=s.case_reference,
                facts=s.facts,
                link_to_offence=s.link,
                legal_order=order,
                time_range=s.time_range,
            )

        times: dict[str, list[float]] = {"hit check": [], "private": [], "private, filters cached": []}
        async with running_federation(fed), load_profile(fed.profiles[s.agency]).async_client() as client:
            await client.query(spec("hit-check"))  # warm the channels
            filters = await client.private_filters(s.node)
            for _ in range(queries):
                t0 = time.perf_counter()
                assert (await client.query(spec("hit-check"))).hit
                t1 = time.perf_counter()
                assert (await client.private_hit_check(spec("private-hit-check"))).hit
                t2 = time.perf_counter()
                assert (await client.private_hit_check(spec("private-hit-check"), filters=filters)).hit
                t3 = time.perf_counter()
                times["hit check"].append(t1 - t0)
                times["private"].append(t2 - t1)
                times["private, filters cached"].append(t3 - t2)
        return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main() -> None:
    """Run the benchmarks and print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench private", description=__doc__)
    parser.add_argument("--sizes", default="10000,1000000,10000000")
    parser.add_argument("--queries", type=int, default=15, help="at most 16: the investigator quota")
    parser.add_argument("--quick", action="store_true", help="10^4 selectors, 5 queries")
    parser.add_argument(
        "--days",
        type=int,
        default=365,
        help="day segments the largest size is split into, for a requester's test over that range",
    )
    ns = parser.parse_args()
    sizes = [10_000] if ns.quick else [int(x) for x in ns.sizes.split(",")]
    queries = 5 if ns.quick else ns.queries
    print(f"# python {platform.python_version()}, {platform.machine()}")
    print("\n## per query (median ms, sequential, in-process federation)")
    result = asyncio.run(per_query(queries))
    for name, ms in result.items():
        print(f"{name:28} {ms:8.2f} ms   x{ms / result['hit check']:.2f} of a hit check")
    print("\n## VOPRF steps, one selector (median µs)")
    steps = crypto_steps(200 if not ns.quick else 20)
    for name, us in steps.items():
        print(f"{name:38} {us:9.1f} µs")
    rate = evaluation_rate(2000 if not ns.quick else 200)
    print(f"\n## node: {rate:,.0f} selectors/s evaluated (one core) → 10^7 in {1e7 / rate / 60:.0f} min")
    print("\n## filters (Golomb-coded set, fp 10^-9, index every 256)")
    for row in filter_scale(sizes, 2000 if not ns.quick else 200):
        print(
            f"{row['selectors']:>11,} selectors: build {row['build_s']:7.2f} s, {row['bytes'] / 1e6:8.2f} MB "
            f"({row['bits_per_selector']:.1f} bits each), look-up {row['lookup_us']:.0f} µs"
        )
    total, days = max(sizes), (7 if ns.quick else ns.days)
    shard = day_shards(total, days, 20 if ns.quick else 200)
    print(f"\n## day segments: {total:,} (selector, day) entries in {days} days vs one undated set")
    print(
        f"build {shard['shards_build_s']:.2f} s vs {shard['undated_build_s']:.2f} s; "
        f"size {shard['shards_mb']:.2f} MB vs {shard['undated_mb']:.2f} MB; "
        f"test over the range {shard['range_test_ms']:.2f} ms "
        f"vs one look-up {shard['single_test_ms']:.3f} ms "
        f"(x{shard['range_test_ms'] / shard['single_test_ms']:.0f})"
    )


if __name__ == "__main__":
    main()
