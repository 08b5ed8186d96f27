"""One writer process per SQLite database.

SQLite serialises writers inside one file, but two gateway processes over one SQLite log would
each keep their own view of the tree's head and fork it. An exclusive advisory lock on a file
beside the database makes the second process refuse to start. PostgreSQL stores need no lock:
several gateways may share one (their appends are serialised by the database).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import URL

from comity.core.errors import ConfigError

__all__ = ["WriterLock", "lock_sqlite_writer"]


class WriterLock:
    """A held lock; :meth:`release` lets another process take the database."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lock_sqlite_writer(url: URL, *, what: str, field: str) -> WriterLock | None:
    """Take the single-writer lock of the SQLite database at ``url``; None for other databases.

    Raises :class:`ConfigError` when another process holds it.
    """
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database).resolve().with_name(Path(url.database).name + ".writer-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(
            f"{what} {url.database} is already open for writing by another process (pid {holder})",
            field=field,
            hint="an SQLite store has one writer: stop the other process, or use PostgreSQL for replicas",
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return WriterLock(path, fd)
