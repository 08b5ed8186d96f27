"""`comity demo`: the whole system on loopback, with a readable account of what happened."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from comity.sdk.cli.main import app, console, friendly


@app.command("demo")
@friendly
def demo(
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the federation running and show how to query it.")
    ] = False,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Keep keys, configs and databases under this folder.")
    ] = None,
    people: Annotated[int, typer.Option(help="Synthetic people per node.")] = 150,
    seed: Annotated[
        int, typer.Option(help="Seed for the synthetic records (same seed, same records).")
    ] = 2026,
) -> None:
    """Run a two-country federation (US and Canada) with allowed and refused queries both ways."""
    from comity.sdk.demo.run import run_demo

    logging.basicConfig(level=logging.WARNING)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    try:
        ok = asyncio.run(run_demo(console, directory=directory, keep=keep, people=people, seed=seed))
    except KeyboardInterrupt:
        ok = True
    if directory is not None:
        console.print(f"\neverything the demo made is in {directory}")
    if not ok:
        raise typer.Exit(1)
