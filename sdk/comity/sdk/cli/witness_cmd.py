"""`comity witness serve`: an independent witness (a court, an NGO) of the federation's log."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from comity.sdk.cli.main import ConfigOpt, err_console, friendly

app = typer.Typer(help="Run an independent witness of the transparency log.", no_args_is_help=True)


@app.command("serve")
@friendly
def serve(
    config: ConfigOpt,
    reinitialise_witness: Annotated[
        bool,
        typer.Option(
            "--reinitialise-witness",
            help="The witness state is lost: continue from the newest checkpoint the log shows it cosigned.",
        ),
    ] = False,
) -> None:
    """Serve the witness (C2SP tlog-witness) to the gateway until SIGTERM or SIGINT."""
    from comity.core.serving import wait_for_termination
    from comity.nodes.witness_server import load_witness_config, start_witness

    cfg = load_witness_config(config)

    async def run() -> None:
        handle = await start_witness(cfg, reinitialise_witness=reinitialise_witness)
        err_console.print(f"witness {cfg.witness_id} serving on port {handle.port}")
        await wait_for_termination(handle)

    asyncio.run(run())
