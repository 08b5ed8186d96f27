"""The `comity` command: thin commands over the library; no logic lives only here.

This module assembles the command: each ``*_cmd`` module adds its commands to the root
(:mod:`comity.sdk.cli.root`) or defines a group added here. Command modules never import this
one. Server packages are imported inside the commands that start servers, so an
investigator's install of the SDK does not load the gateway or node code.
"""

from __future__ import annotations

from comity.sdk.cli import (
    audit_cmd,
    config_cmd,
    console_cmd,
    demo_cmd,
    federation_cmd,
    gateway_cmd,
    init_cmd,
    keys_cmd,
    node_cmd,
    order_cmd,
    pki_cmd,
    policy_cmd,
    query_cmd,
    receipt_cmd,
    replay_cmd,
    token_cmd,
    witness_cmd,
)
from comity.sdk.cli.root import EXIT_ERROR, EXIT_REFUSED, app

__all__ = ["EXIT_ERROR", "EXIT_REFUSED", "app", "main"]

# These add their commands to the root, or to a group of another command module, when imported.
_SELF_REGISTERING = (
    audit_cmd, console_cmd, demo_cmd, gateway_cmd, node_cmd, policy_cmd, query_cmd, receipt_cmd, replay_cmd
)  # fmt: skip

app.add_typer(keys_cmd.app, name="keys")
app.add_typer(pki_cmd.app, name="pki")
app.add_typer(order_cmd.app, name="order")
app.add_typer(federation_cmd.app, name="federation")
app.add_typer(witness_cmd.app, name="witness")
app.add_typer(token_cmd.app, name="token")
app.command("init")(init_cmd.init)
app.add_typer(config_cmd.config_app, name="config")


def main() -> None:
    """Console-script entry point."""
    app()
