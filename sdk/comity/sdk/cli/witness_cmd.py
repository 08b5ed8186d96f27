"""`comity witness serve`: an independent witness (a court, an NGO) of the federation's log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from comity.sdk.cli.root import ConfigOpt, ReinitialiseWitnessOpt, console, err_console, friendly

app = typer.Typer(help="Run an independent witness of the transparency log.", no_args_is_help=True)


@app.command("serve")
@friendly
def serve(
    config: ConfigOpt,
    reinitialise_witness: ReinitialiseWitnessOpt = False,
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


@app.command("latest")
@friendly
def latest(
    state: Annotated[Path, typer.Option(help="The witness's state file (a node's or an independent one's).")],
    out: Annotated[Path, typer.Option(help="Where to write the cosigned checkpoint (the witness view).")],
) -> None:
    """Export the latest checkpoint this witness cosigned, read from its state file (never the gateway).

    The file is signed by the log and cosigned by the witness: send it to the other parties'
    legal officers, who check their copy of the log contains it (`comity audit verify --witness-view`).
    """
    from comity.audit.checkpoint import Checkpoint
    from comity.audit.errors import WitnessError
    from comity.audit.note import Note
    from comity.audit.witness import read_latest_cosigned

    note = read_latest_cosigned(state)
    if note is None:
        raise WitnessError(f"the witness at {state} has not cosigned any checkpoint yet")
    out.write_bytes(note)
    size = Checkpoint.from_text(Note.parse(note).text).size
    console.print(f"wrote the checkpoint of size {size} the witness cosigned to {out}")
