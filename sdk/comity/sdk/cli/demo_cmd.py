"""`comity demo`: the whole system on loopback, with a readable account of what happened."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from comity.sdk.cli.root import app, console, friendly


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
    countries: Annotated[
        str,
        typer.Option(
            help="The member countries, us,ca first; each further one (us,ca,gb) joins under an "
            "agreement with the first only."
        ),
    ] = "us,ca",
) -> None:
    """Run a two-country federation (US and Canada) with allowed and refused queries both ways.

    With --countries us,ca,gb the UK joins under a US–UK agreement and none with Canada: queries
    on each pair, a refusal for the pair without agreement, and every country's node witnessing.
    """
    from comity.sdk.demo.more_countries import parse_countries
    from comity.sdk.demo.run import run_demo

    members = parse_countries(countries)
    logging.basicConfig(level=logging.WARNING)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    try:
        ok = asyncio.run(
            run_demo(console, directory=directory, keep=keep, people=people, seed=seed, countries=members)
        )
    except KeyboardInterrupt:
        ok = True
    if directory is not None:
        console.print(f"\neverything the demo made is in {directory}")
    if not ok:
        raise typer.Exit(1)
