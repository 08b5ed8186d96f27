"""Shared pieces of the key, PKI, order and init commands: passphrases and error exits."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer

from comity.core.errors import ComityError, ConfigError
from comity.sdk.cli.render import make_console, print_error

__all__ = ["errors_exit", "passphrase_from_env", "stderr", "stdout"]

stdout = make_console()
stderr = make_console(stderr=True)


def passphrase_from_env(variable: str | None) -> bytes | None:
    """The passphrase held in environment variable ``variable`` (passphrases never go on a command line)."""
    if not variable:
        return None
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(f"environment variable {variable} is not set or empty", field="--passphrase-env")
    return value.encode()


@contextmanager
def errors_exit(on_error: Callable[[ComityError], None] | None = None) -> Iterator[None]:
    """Print a Comity error for a person and exit with status 1; anything else propagates."""
    try:
        yield
    except ComityError as err:
        if on_error:
            on_error(err)
        print_error(stderr, err)
        raise typer.Exit(1) from None
