"""Policy decision cost, against a permit-all Cedar baseline measured in the same run.

Rows (all through cedarpy with a schema, in one process, after a warm-up):

- ``baseline: permit-all``: one ``is_authorized`` call with cached handles (policy set,
  schema, entities) on a one-line ``permit`` policy and the same request: the floor for
  any Cedar decision from Python.
- ``permit-all without schema``: the same, without request validation against the schema
  (shown to price the validation; the engine always validates).
- ``agreement: allow``: ``PolicyEngine.decide`` of an allowed query (fact checks, context
  building, one Cedar call with the 11 rules).
- ``agreement: deny (3 rules)``: a refused query (the same single Cedar call; the scope
  permit's mirror-image forbid reports an out-of-scope query beside the other rules).
- ``context only``: ``facts.check()`` + the request built from facts, no Cedar.
- ``no cached handles``: the same Cedar call with policy, schema and entities passed as
  text each time (what the engine avoids by parsing once at load).
- ``bundle load``: ``PolicyBundle.load`` including the bundle's 66 self-tests.

Run: ``python -m bench.policy_bench`` (``--n 5000``, ``--repeats 3``). Medians of the
per-repeat p50 and p99 are printed in µs with the ratio to the baseline's p50.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from typing import Any

import cedarpy

from comity.policy import PolicyBundle, PolicyEngine, QueryFacts
from comity.policy.pairing import shipped_bundles

_PERMIT_ALL = '@id("ALL") permit (principal, action, resource);'


def _facts(bundle: PolicyBundle) -> QueryFacts:
    return next(c.facts for c in bundle.tests if c.allowed)


def _percentiles(fn: Callable[[], object], n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


def _measure(fn: Callable[[], object], n: int, repeats: int) -> tuple[float, float]:
    for _ in range(min(n, 200)):
        fn()  # warm-up
    runs = [_percentiles(fn, n) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="decisions per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n, repeats = args.n, args.repeats

    # The shipped agreement (the one gateway bundle Comity ships).
    bundle = next(b for b in shipped_bundles() if b.manifest.scope == "gateway")
    root = bundle.path
    engine = PolicyEngine(bundle)
    allowed = _facts(bundle)
    denied = replace(allowed, order_offence_code="18 USC 875(d)", max_records=500, agency_queries_today=5000)
    assert engine.decide(allowed).allowed
    assert len(engine.decide(denied).violations) == 3

    request: dict[str, Any] = engine.cedar_request(allowed)
    permit_all = cedarpy.PolicySet.from_str(_PERMIT_ALL)
    policy_text = "\n".join(r.source for r in bundle.rules)
    schema_text = (root / "schema.cedarschema").read_text(encoding="utf-8")
    entities_text = json.dumps(json.loads((root / "entities.json").read_text(encoding="utf-8")))

    rows: list[tuple[str, Callable[[], object], int]] = [
        (
            "baseline: permit-all",
            lambda: cedarpy.is_authorized(request, permit_all, bundle.entities, bundle.schema),
            n,
        ),
        ("permit-all without schema", lambda: cedarpy.is_authorized(request, permit_all, bundle.entities), n),
        ("agreement: allow", lambda: engine.decide(allowed), n),
        ("agreement: deny (3 rules)", lambda: engine.decide(denied), n),
        ("context only (no Cedar)", lambda: engine.cedar_request(allowed), n),
        (
            "no cached handles",
            lambda: cedarpy.is_authorized(request, policy_text, entities_text, schema_text),
            max(50, n // 20),
        ),
        ("bundle load (66 self-tests)", lambda: PolicyBundle.load(root), max(5, n // 500)),
    ]
    results = [(name, *_measure(fn, count, repeats)) for name, fn, count in rows]
    base = results[0][1]
    version = metadata.version("cedarpy")
    print(f"cedarpy {version} | n={n} | repeats={repeats} | medians of per-repeat percentiles")
    print(f"{'case':<30} {'p50 µs':>10} {'p99 µs':>10} {'p50 / baseline':>15}")
    for name, p50, p99 in results:
        print(f"{name:<30} {p50:>10.1f} {p99:>10.1f} {p50 / base:>14.1f}x")


if __name__ == "__main__":
    main()
