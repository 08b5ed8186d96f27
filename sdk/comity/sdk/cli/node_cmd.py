"""`comity node load|stats|check`: an operator's tools for a node's records."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from comity.sdk.cli.root import (
    ConfigOpt,
    ReinitialiseWitnessOpt,
    console,
    err_console,
    friendly,
    node_app,
    print_policies,
)


@node_app.command("load")
@friendly
def load(
    config: ConfigOpt,
    path: Annotated[Path, typer.Argument(help="JSON Lines (.jsonl) or CSV (.csv) file of records.")],
    dataset: Annotated[str, typer.Option(help="The dataset the records join.")] = "default",
    skip_bad: Annotated[
        bool, typer.Option(help="Load the good rows and write bad ones to a reject file.")
    ] = False,
    reject_file: Annotated[Path | None, typer.Option(help="Where bad rows go with --skip-bad.")] = None,
) -> None:
    """Load records into the node's store, in one transaction (all or nothing, unless --skip-bad)."""
    from comity.core.federation import Federation
    from comity.nodes.config import load_node_config, node_schema
    from comity.nodes.ingest import load_file
    from comity.nodes.store import RecordStore

    cfg = load_node_config(config)
    country = Federation.load(cfg.federation).node(cfg.node_id).country
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    opened = RecordStore(cfg.store_url, schema=node_schema(cfg))
    with opened as store, Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"loading {path.name}", total=path.stat().st_size if path.exists() else None)

        def progress(rows: int, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = load_file(
            store,
            path,
            dataset=dataset,
            region=country,
            skip_bad=skip_bad,
            reject_file=reject_file,
            progress=progress,
        )
    console.print(
        f"[green]loaded[/] {report.loaded} record(s) from {report.rows} row(s) into {cfg.node_id}"
        f" ({report.replaced} replaced, {report.rejected} rejected)"
    )
    if report.reject_file:
        console.print(f"[yellow]rejected rows written to {report.reject_file}[/]")


@node_app.command("stats")
@friendly
def stats(config: ConfigOpt) -> None:
    """Record counts per dataset, record type and data category."""
    from comity.nodes.config import load_node_config, open_source

    cfg = load_node_config(config)
    source = open_source(cfg)
    try:
        rows = source.stats()
    finally:
        source.close()
    table = Table(title=f"records held by {cfg.node_id}")
    for col in ("dataset", "record type", "category", "records"):
        table.add_column(col, justify="right" if col == "records" else "left")
    for row in rows:
        table.add_row(row.dataset, row.record_type, row.category.name, str(row.records))
    console.print(table)


@node_app.command("check")
@friendly
def check(config: ConfigOpt) -> None:
    """Check the config, the federation entry, the keys, the policy bundle and the store."""
    from comity.core.federation import Federation
    from comity.core.selfcheck import check_certificate_pinned, check_key_listed
    from comity.nodes.config import load_node_config, node_schema, open_source
    from comity.nodes.inbound import inbound_digest
    from comity.nodes.store import RecordStore
    from comity.policy.agreements import load_policies

    cfg = load_node_config(config)
    console.print(f"[green]✓[/] config {config}")
    schema = node_schema(cfg)
    source_of_types = cfg.schema_file or "the built-in schema"
    console.print(f"[green]✓[/] record types from {source_of_types}: {', '.join(schema.record_type_names)}")
    federation = Federation.load(cfg.federation)
    node = federation.node(cfg.node_id)
    console.print(f"[green]✓[/] federation lists {node.id} ({node.country}) at {node.endpoint}")
    check_key_listed(cfg.response_key, node.response_key, what="response key", field="keys.response_key")
    check_key_listed(cfg.witness_key, node.witness_key, what="witness key", field="keys.witness_key")
    console.print("[green]✓[/] response and witness keys are the ones the federation lists")
    check_certificate_pinned(cfg.tls_cert, node.pins, what="TLS certificate")
    console.print("[green]✓[/] TLS certificate pinned by the federation")
    policies = load_policies(
        federation,
        store=cfg.bundle_store,
        configured=cfg.policy_bundle,
        digest_of=inbound_digest(node),
        build=lambda bundle: bundle,
        what=f"{node.country} inbound",
    )
    print_policies(policies)
    source = open_source(cfg, create=False, schema=schema)
    try:
        if isinstance(source, RecordStore) and source.is_new():
            # A node not started yet: its own store is reachable, and gets its tables at start.
            console.print(
                f"[green]✓[/] store {source.backend} at {source.location}: new (no records; the node "
                "makes its tables when it starts or loads records)"
            )
            return
        report = source.check()
    finally:
        source.close()
    console.print(
        f"[green]✓[/] store {report.backend} at {report.location}: {report.records} records, "
        f"indexes {', '.join(report.indexes)}"
    )


@node_app.command("serve")
@friendly
def node_serve(
    config: ConfigOpt,
    reinitialise_witness: ReinitialiseWitnessOpt = False,
) -> None:
    """Serve a data node until SIGTERM or SIGINT."""
    from comity.core.serving import wait_for_termination
    from comity.core.telemetry import setup_telemetry
    from comity.nodes.config import load_node_config
    from comity.nodes.server import start_node

    cfg = load_node_config(config)
    telemetry = setup_telemetry(cfg.telemetry)

    async def run() -> None:
        handle = await start_node(cfg, reinitialise_witness=reinitialise_witness)
        handle.on_stop.append(telemetry.shutdown)
        err_console.print(f"node {cfg.node_id} serving on port {handle.port}")
        await wait_for_termination(handle)

    asyncio.run(run())
