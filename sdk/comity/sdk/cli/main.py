"""The `comity` command: thin commands over the library; no logic lives only here.

Server packages are imported inside the commands that start servers, so an investigator's
install of the SDK does not load the gateway or node code.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from comity.core.errors import ComityError
from comity.sdk.cli.render import make_console

if TYPE_CHECKING:
    from comity.policy.agreements import ByAgreement
    from comity.policy.bundle import PolicyBundle

app = typer.Typer(
    help="Comity: lawful, audited cross-border queries between law-enforcement agencies.",
    no_args_is_help=True,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"comity {version('comity')}")
        except PackageNotFoundError:
            typer.echo("comity (not installed as a package: version unknown)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the installed version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Comity: lawful, audited cross-border queries between law-enforcement agencies."""


node_app = typer.Typer(help="Run and feed a data node.", no_args_is_help=True)
gateway_app = typer.Typer(help="Run the gateway.", no_args_is_help=True)
app.add_typer(node_app, name="node")
app.add_typer(gateway_app, name="gateway")

console = make_console()
err_console = make_console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

# Exit statuses scripts can rely on.
EXIT_REFUSED = 3
EXIT_ERROR = 1


def friendly(fn: F) -> F:
    """Print a ComityError as a message with its hint and exit non-zero, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ComityError as err:
            from comity.sdk.cli.render import print_error

            print_error(err_console, err)
            raise typer.Exit(EXIT_REFUSED if err.code.name == "PERMISSION_DENIED" else EXIT_ERROR) from None

    return wrapper  # type: ignore[return-value]


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The component's TOML configuration file.")]


@node_app.command("serve")
@friendly
def node_serve(
    config: ConfigOpt,
    reinitialise_witness: Annotated[
        bool,
        typer.Option(
            "--reinitialise-witness",
            help="The witness state is lost: continue from the newest checkpoint the log shows it cosigned.",
        ),
    ] = False,
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


def print_policies(policies: ByAgreement[PolicyBundle]) -> None:
    """One line per agreement (or the one configured bundle): its bundle passed its own tests."""
    chosen = dict(policies.policies)
    if policies.fallback is not None:
        chosen["(every query: the federation file lists no agreements)"] = policies.fallback
    for agreement, bundle in chosen.items():
        console.print(
            f"[green]✓[/] {agreement}: policy bundle {bundle.name} {bundle.version} passes its tests "
            f"({bundle.digest[:23]}…)"
        )


@gateway_app.command("check")
@friendly
def gateway_check(config: ConfigOpt) -> None:
    """Check the config, its keys and certificates against the federation, and the policy bundle."""
    from comity.core.federation import Federation
    from comity.core.selfcheck import check_certificate_pinned, check_key_listed
    from comity.gateway.config import load_gateway_config
    from comity.policy.agreements import load_policies

    cfg = load_gateway_config(config)
    console.print(f"[green]✓[/] config {config}")
    federation = Federation.load(cfg.federation)
    gateway = federation.gateway
    console.print(
        f"[green]✓[/] federation {federation.name} lists gateway {gateway.id} at {gateway.endpoint}"
    )
    check_key_listed(cfg.decision_key, gateway.decision_key, what="decision key", field="keys.decision_key")
    check_key_listed(cfg.log_key, gateway.log.key, what="log key", field="keys.log_key")
    console.print("[green]✓[/] decision and log keys are the ones the federation lists")
    check_certificate_pinned(cfg.tls_cert, gateway.server_pins, what="server certificate")
    check_certificate_pinned(cfg.client_cert, gateway.client_pins, what="client certificate")
    console.print("[green]✓[/] server and client certificates pinned by the federation")
    policies = load_policies(
        federation,
        store=cfg.bundle_store,
        configured=cfg.policy_bundle,
        digest_of=lambda agreement: agreement.bundle_digest,
        build=lambda bundle: bundle,
        what="gateway",
    )
    print_policies(policies)


@gateway_app.command("serve")
@friendly
def gateway_serve(config: ConfigOpt) -> None:
    """Serve the gateway until SIGTERM or SIGINT."""
    from comity.core.serving import wait_for_termination
    from comity.core.telemetry import setup_telemetry
    from comity.gateway.config import load_gateway_config
    from comity.gateway.server import start_gateway

    cfg = load_gateway_config(config)
    telemetry = setup_telemetry(cfg.telemetry)

    async def run() -> None:
        gateway = await start_gateway(cfg)
        gateway.handle.on_stop.append(telemetry.shutdown)
        err_console.print(f"gateway serving on port {gateway.handle.port}")
        await wait_for_termination(gateway.handle)

    asyncio.run(run())


def main() -> None:
    """Console-script entry point."""
    app()


def _register() -> None:
    # These modules add their commands to `app` when imported; each is small and imports
    # server packages only inside its commands.
    for name in ("audit_cmd", "demo_cmd", "node_cmd", "policy_cmd", "replay_cmd", "query_cmd"):
        importlib.import_module(f"comity.sdk.cli.{name}")
    from comity.sdk.cli import (
        config_cmd,
        federation_cmd,
        init_cmd,
        keys_cmd,
        order_cmd,
        pki_cmd,
        token_cmd,
        witness_cmd,
    )

    app.add_typer(keys_cmd.app, name="keys")
    app.add_typer(pki_cmd.app, name="pki")
    app.add_typer(order_cmd.app, name="order")
    app.add_typer(federation_cmd.app, name="federation")
    app.add_typer(witness_cmd.app, name="witness")
    app.add_typer(token_cmd.app, name="token")
    app.command("init")(init_cmd.init)
    app.add_typer(config_cmd.config_app, name="config")


_register()
