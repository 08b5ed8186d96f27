"""`comity policy replay`: re-decide logged decisions from the log and report any difference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from comity.core.errors import InvalidArgument
from comity.sdk.cli.audit_cmd import DbOpt, UrlOpt, _url
from comity.sdk.cli.policy_cmd import policy_app
from comity.sdk.cli.root import console, friendly


@policy_app.command("replay")
@friendly
def replay(
    bundles: Annotated[
        Path,
        typer.Option("--bundles", help="The bundle store: the gateway's [policy] store folder."),
    ],
    db: DbOpt = None,
    url: UrlOpt = None,
    entry: Annotated[int | None, typer.Option("--entry", help="Replay this entry only.")] = None,
    start: Annotated[int, typer.Option("--from", help="First entry of the range.")] = 0,
    end: Annotated[int | None, typer.Option("--to", help="End of the range (exclusive).")] = None,
    orders: Annotated[
        Path | None, typer.Option("--orders", help="A folder of signed order files (*.order) to check too.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    node_state: Annotated[
        list[str] | None,
        typer.Option(
            "--node-state",
            help="NODE=URL: a node's database (its [store] url), whose sealed openings let its "
            "decisions be replayed. Repeatable.",
        ),
    ] = None,
) -> None:
    """Replay the gateway's and the nodes' decisions under the bundle each names; exits 1 if any
    differs from the log."""
    from comity.audit.store import LogStore
    from comity.core.dsse import payload_digest
    from comity.gateway.replay_run import replay_log
    from comity.policy.bundle_store import BundleStore
    from comity.sdk.query import read_order_file
    from comity.v1 import comity_pb2 as pb

    if entry is not None:
        start, end = entry, entry + 1
    if start < 0 or (end is not None and end <= start):
        raise InvalidArgument("the range is empty or reversed", hint="use --from N --to M with M > N")
    envelopes = [read_order_file(p) for p in sorted(orders.glob("*.order"))] if orders else []
    known = [(payload_digest(e), pb.LegalOrder.FromString(e.payload)) for e in envelopes]
    nodes = _node_states(node_state or [])
    store = LogStore.open(_url(db, url), create=False)
    try:
        results = replay_log(
            store,
            bundles=BundleStore(bundles),
            start=start,
            end=end,
            orders=known,
            sealed=_opener(nodes) if nodes else None,
        )
    finally:
        store.close()
        for state in nodes.values():
            state.close()
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
    else:
        _print(results)
    if any(r.differences for r in results):
        raise typer.Exit(1)


def _print(results: list[Any]) -> None:
    table = Table(show_header=True)
    for col in ("entry", "kind", "query", "logged", "replayed", "taken as logged", "differences"):
        table.add_column(col, overflow="fold")
    for r in results:
        differences = (r.skipped and f"not replayed: {r.skipped}") or "; ".join(r.differences) or "none"
        table.add_row(str(r.index), r.kind, r.query_id, r.logged, r.replayed, "; ".join(r.taken), differences)
    console.print(table)
    skipped = [r for r in results if r.skipped]
    if skipped:
        console.print(
            f"{len(skipped)} node decision(s) not replayed: give the node's database with --node-state"
        )
    replayed = [r for r in results if not r.skipped]
    same = sum(r.identical for r in replayed)
    console.print(f"{same} of {len(replayed)} decision(s) replayed identically")


def _node_states(given: list[str]) -> dict[str, Any]:
    """``NODE=URL`` options, each opened as the node's state (its sealed openings)."""
    from comity.nodes.state import NodeState

    states: dict[str, Any] = {}
    for item in given:
        node, sep, location = item.partition("=")
        if not sep or not node or not location:
            raise InvalidArgument(
                f"--node-state {item!r} is not NODE=URL",
                hint="e.g. --node-state NODE_ID=sqlite:///data/NODE_ID.db",
            )
        states[node] = NodeState(location)
    return states


def _opener(states: dict[str, Any]) -> Any:
    """Opens a node's sealed reason from that node's state."""

    def opened(node: str, query_id: str, commitment: bytes) -> dict[str, Any] | None:
        state = states.get(node)
        return None if state is None else state.open_sealed(query_id, commitment)

    return opened
