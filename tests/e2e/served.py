"""Comity servers as real processes for the crash and replica tests: start, wait, kill, count rows;
gateway replicas on a PostgreSQL database of the test's own."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
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


def start_server(
    kind: str, config: Path, port: int, log: Path, *, timeout: float = 60.0
) -> subprocess.Popen[bytes]:
    """``comity KIND serve --config CONFIG``, once it listens on ``port``; its stderr appended to ``log``.

    Fails with the log's text when the server exits instead."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [COMITY, kind, "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env={**os.environ, "GRPC_VERBOSITY": "NONE"},
        )
    wait_for(lambda: listening(port) or process.poll() is not None, f"{kind} on port {port}", timeout)
    if process.poll() is not None:
        raise AssertionError(f"{kind} exited: {log.read_text(errors='replace')}")
    return process


def stop_server(process: subprocess.Popen[bytes], *, timeout: float = 20.0) -> None:
    """Stop a server gracefully (SIGTERM), killing it if it has not exited within ``timeout``."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serving(kind: str, config: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`start_server`, killed on exit; its log goes to ``server_log(config)`` (appended across
    restarts), for the assertions and for whoever reads a failure."""
    process = start_server(kind, config, port, server_log(config), timeout=30.0)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def server_log(config: Path) -> Path:
    """Where :func:`serving` writes the log of the server started with ``config``."""
    return config.with_suffix(".log")


def gateway_on_postgres(text: str, url: str) -> str:
    """The demo gateway config ``text`` with its log and replay stores in the database at ``url``."""
    for store in ("audit", "replay"):
        sqlite = f'url = "sqlite:///../data/{store}.db"'
        assert sqlite in text, f"the demo gateway config no longer says {sqlite}"
        text = text.replace(sqlite, f'url = "{url}"')
    return text


def replica_configs(beside: Path, text: str, ports: Sequence[int]) -> list[Path]:
    """``gateway-N.toml`` beside ``beside``: the config ``text`` listening on each of ``ports``."""
    configs = []
    for i, port in enumerate(ports):
        path = beside.with_name(f"gateway-{i}.toml")
        path.write_text(re.sub(r'(?m)^listen = ".*"$', f'listen = "127.0.0.1:{port}"', text, count=1))
        configs.append(path)
    return configs
