"""`comity policy replay`: re-decide logged decisions from the log and report any difference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from comity.core.errors import InvalidArgument
from comity.sdk.cli.audit_cmd import DbOpt, UrlOpt, _url
from comity.sdk.cli.main import console, friendly
from comity.sdk.cli.policy_cmd import policy_app


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
) -> None:
    """Replay decision entries under the bundle each names; exits 1 if any differs from the log."""
    from comity.audit.store import LogStore
    from comity.core.dsse import payload_digest
    from comity.gateway.replay import replay_log
    from comity.policy.bundle_store import BundleStore
    from comity.sdk.query import read_order_file
    from comity.v1 import comity_pb2 as pb

    if entry is not None:
        start, end = entry, entry + 1
    if start < 0 or (end is not None and end <= start):
        raise InvalidArgument("the range is empty or reversed", hint="use --from N --to M with M > N")
    envelopes = [read_order_file(p) for p in sorted(orders.glob("*.order"))] if orders else []
    known = [(payload_digest(e), pb.LegalOrder.FromString(e.payload)) for e in envelopes]
    store = LogStore.open(_url(db, url), create=False)
    try:
        results = replay_log(store, bundles=BundleStore(bundles), start=start, end=end, orders=known)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
    else:
        table = Table(show_header=True)
        for col in ("entry", "query", "logged", "replayed", "differences"):
            table.add_column(col, overflow="fold")
        for r in results:
            table.add_row(str(r.index), r.query_id, r.logged, r.replayed, "; ".join(r.differences) or "none")
        console.print(table)
        same = sum(r.identical for r in results)
        console.print(f"{same} of {len(results)} decision(s) replayed identically")
    if any(not r.identical for r in results):
        raise typer.Exit(1)
