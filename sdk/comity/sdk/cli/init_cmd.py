"""``comity init DIR``: write a complete two-country federation for a demo or a test."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from comity.core.bootstrap import init_federation
from comity.sdk.cli._common import errors_exit, passphrase_from_env, stdout

__all__ = ["init"]


def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder to write into (created; must not hold a federation).")
    ],
    gateway_port: Annotated[int, typer.Option(help="Port of the gateway.")] = 7443,
    us_node_port: Annotated[int, typer.Option(help="Port of us-node.")] = 7101,
    ca_node_port: Annotated[int, typer.Option(help="Port of ca-node.")] = 7102,
    host: Annotated[str, typer.Option(help="Address everything listens on.")] = "127.0.0.1",
    passphrase_env: Annotated[
        str | None,
        typer.Option(help="Encrypt private keys with the passphrase in this environment variable."),
    ] = None,
) -> None:
    """Write keys, certificates and federation.toml for a US/Canada federation on one machine."""
    with errors_exit():
        layout = init_federation(
            directory,
            gateway_port=gateway_port,
            node_ports={"us-node": us_node_port, "ca-node": ca_node_port},
            host=host,
            passphrase=passphrase_from_env(passphrase_env),
        )
    stdout.print(f"wrote federation [bold]{layout.name}[/] to {layout.federation_file}")
    stdout.print(f"  gateway {layout.gateway.endpoint}")
    for node in layout.nodes.values():
        stdout.print(f"  {node.node_id} ({node.country}) {node.endpoint}")
    for agency in layout.agencies.values():
        stdout.print(f"  {agency.agency}: investigator {agency.investigator}, authority {agency.authority}")
