"""``python -m bench``: one entry point for every benchmark.

python -m bench run [--quick] [--json] [--against DIR]   full path vs. the two-hop baseline (and DIR's code)
python -m bench breakdown [--quick]       where a request's CPU goes (py-spy profiles)
python -m bench soak [--queries N]        the gateway's memory over a long run
python -m bench floor [--seconds S]      the bare proxy, Comity and the essential-work floor in one run
python -m bench costs [--queries N]      Ed25519 operations and durable commits per query, counted
python -m bench policy|audit|node|private|console|replicas [...]   component benchmarks (their own options)
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

_COMPONENTS = {
    "policy": "bench.policy_bench",
    "audit": "bench.audit_bench",
    "node": "bench.node_bench",
    "private": "bench.private_bench",
    "console": "bench.console_bench",
    "replicas": "bench.replicas_bench",
    "costs": "bench.costs",
    "floor": "bench.floor_bench",
}


def _component(name: str, argv: Sequence[str]) -> None:
    module = importlib.import_module(_COMPONENTS[name])
    # Each component benchmark parses sys.argv itself.
    sys.argv = [f"python -m bench {name}", *argv]
    module.main()


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command and run it."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in _COMPONENTS:
        _component(args[0], args[1:])
        return
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="full path vs. the baseline at c=1, 16, 64")
    brk_p = sub.add_parser("breakdown", help="profile the gateway and node under load")
    for p in (run_p, brk_p):
        p.add_argument("--quick", action="store_true", help="short runs (about 30 s)")
        p.add_argument("--json", action="store_true", help="print JSON instead of tables")
        p.add_argument("--seconds", type=float, help="seconds per run")
    run_p.add_argument("--repeats", type=int, help="runs per concurrency and system (median reported)")
    run_p.add_argument("--concurrency", help="comma-separated, default 1,16,64")
    run_p.add_argument("--against", type=Path, help="also run Comity from this source tree, as 'before'")
    brk_p.add_argument("--concurrency", type=int, default=16)
    brk_p.add_argument("--top", type=int, default=15, help="rows per process")
    soak_p = sub.add_parser("soak", help="gateway memory over a long run")
    soak_p.add_argument("--queries", type=int, default=10_000)
    soak_p.add_argument("--concurrency", type=int, default=1)
    soak_p.add_argument("--json", action="store_true")
    for name in _COMPONENTS:
        sub.add_parser(name, help=f"component benchmark ({_COMPONENTS[name]}; see its --help)")
    ns = parser.parse_args(args)
    if ns.command == "run":
        from dataclasses import replace

        from bench.run import RunSettings, run

        settings = RunSettings.quick() if ns.quick else RunSettings()
        if ns.seconds:
            settings = replace(settings, seconds=ns.seconds)
        if ns.repeats:
            settings = replace(settings, repeats=ns.repeats)
        if ns.concurrency:
            settings = replace(settings, concurrency=tuple(int(c) for c in ns.concurrency.split(",")))
        if ns.against:
            settings = replace(settings, against=ns.against)
        run(settings, as_json=ns.json)
    elif ns.command == "breakdown":
        from bench.breakdown import breakdown

        seconds = ns.seconds or (3.0 if ns.quick else 10.0)
        breakdown(concurrency=ns.concurrency, seconds=seconds, top=ns.top, as_json=ns.json)
    elif ns.command == "soak":
        from bench.soak import soak

        soak(queries=ns.queries, concurrency=ns.concurrency, as_json=ns.json)


if __name__ == "__main__":
    main()
