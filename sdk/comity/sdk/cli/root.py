"""The root `comity` command and what every command module shares (consoles, error exits).

Command modules import this module and add their commands to :data:`app` (or to a group of
their own that :mod:`comity.sdk.cli.main` adds); nothing here imports a command module, so
the dependencies point one way: ``main`` → ``*_cmd`` → ``root``.
"""

from __future__ import annotations

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

__all__ = [
    "EXIT_ERROR",
    "EXIT_REFUSED",
    "ConfigOpt",
    "app",
    "console",
    "err_console",
    "friendly",
    "gateway_app",
    "node_app",
    "print_policies",
]

# Piped output is read by scripts and kept in logs: usage errors and help are then plain
# lines (Click's own), not panels drawn for an 80-column terminal that cut messages apart.
_PIPED = not (sys.stdout.isatty() and sys.stderr.isatty())
_UNWRAPPED = 10_000

app = typer.Typer(
    help="Comity: lawful, audited cross-border queries between law-enforcement agencies.",
    no_args_is_help=True,
    rich_markup_mode=None if _PIPED else "rich",
    context_settings={"terminal_width": _UNWRAPPED, "max_content_width": _UNWRAPPED} if _PIPED else {},
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


ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The component's TOML configuration file.")]
ReinitialiseWitnessOpt = Annotated[
    bool,
    typer.Option(
        "--reinitialise-witness",
        help="The witness state is lost: continue from the newest checkpoint the log shows it cosigned.",
    ),
]


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
