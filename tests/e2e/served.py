"""Comity servers as real processes for the crash tests: start, wait, kill, count rows."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

COMITY = str(Path(sys.executable).parent / "comity")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def count_rows(db: Path, table: str) -> int:
    """Rows of ``table`` in the SQLite file ``db`` (0 while the table does not exist yet)."""
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def port_of(endpoint: str) -> int:
    """The port of ``host:port``."""
    return int(endpoint.rsplit(":", 1)[1])


@contextmanager
def serving(kind: str, config: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``comity KIND serve --config CONFIG``, until it listens on ``port``; killed on exit.

    Its log goes to ``server_log(config)`` (appended across restarts), for the assertions and
    for whoever reads a failure."""
    with server_log(config).open("ab") as log:
        process = subprocess.Popen(
            [COMITY, kind, "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "GRPC_VERBOSITY": "NONE"},
        )
    try:
        wait_for(lambda: listening(port) or process.poll() is not None, f"{kind} on port {port}")
        if process.poll() is not None:
            raise AssertionError(f"{kind} exited: {server_log(config).read_text(errors='replace')}")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def server_log(config: Path) -> Path:
    """Where :func:`serving` writes the log of the server started with ``config``."""
    return config.with_suffix(".log")
