"""Which gateway replica does the work that one replica must do alone.

Over one PostgreSQL log database, several gateway processes serve queries; the witnessing
rounds (asking every witness to cosign, comparing what each cosigned) and the retention
pruning are done by one of them, the **leader**: the process that holds a session-level
PostgreSQL advisory lock (``pg_try_advisory_lock``) on a connection of its own. The others
stand by and try to take the lock every ``interval`` seconds; when the leader dies, or its
connection does, PostgreSQL ends its session and releases the lock, and a standby takes it
at its next try. A leader checks its connection at the same pace and stops leading as soon
as the check fails.

Leadership saves work, it does not guard the log: appends are serialised by the log's own
lock, a witness refuses any checkpoint that is not consistent with the last one it cosigned,
and a second replica that still believes it leads for up to one interval only asks the
witnesses twice. On SQLite the log has one writer process (``comity.core.writer_lock``), which
always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable

from sqlalchemy import Connection, Engine, create_engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from comity.core.sql import parse_database_url
from comity.core.tasks import cancel_and_wait

__all__ = ["Leadership", "leader_lock_key"]

_log = logging.getLogger("comity.gateway.leadership")


def leader_lock_key(table_prefix: str = "audit_") -> int:
    """The advisory lock of the log with ``table_prefix``'s leader (signed 64-bit, apart from the
    sequencer's)."""
    digest = hashlib.sha256(b"comity-gateway-leader:" + table_prefix.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    """This process's claim to lead the replicas of one log database (see the module docstring)."""

    def __init__(self, url: str, *, interval: float, table_prefix: str = "audit_") -> None:
        parsed = parse_database_url(url, field="audit.url")
        self._engine: Engine | None = None
        if not parsed.drivername.startswith("sqlite"):
            sa_url = parsed.render_as_string(hide_password=False)
            # A connection of its own, outside any pool: its session is what holds the lock.
            self._engine = create_engine(sa_url, poolclass=NullPool)
        self._key = leader_lock_key(table_prefix)
        self._interval = interval
        self._conn: Connection | None = None
        self._leading = self._engine is None
        self._told = False  # whether the first try's outcome was logged
        self._task: asyncio.Task[None] | None = None
        self._changed: list[Callable[[bool], None]] = []

    @property
    def leading(self) -> bool:
        """Whether this process leads now."""
        return self._leading

    def on_change(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(leading)`` whenever this process takes or loses the lead."""
        self._changed.append(callback)

    def try_lead(self) -> bool:
        """Take the lock if it is free, or check that the lock held is still held; returns
        :attr:`leading` (blocking: call it from a thread)."""
        if self._engine is None:
            return True
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
                got = self._conn.execute(select(func.pg_try_advisory_lock(self._key))).scalar()
                self._conn.commit()
                if not got:
                    self._release()
                self._set(bool(got))
            else:
                self._conn.execute(select(1)).scalar()
                self._conn.commit()
        except SQLAlchemyError as exc:
            if self._leading:
                _log.error("lost the lead: the log database connection failed (%s)", exc)
            self._release()
            self._set(False)
        return self._leading

    def _set(self, leading: bool) -> None:
        if leading == self._leading and self._told:
            return
        self._told = True
        self._leading = leading
        _log.info("this gateway %s the replicas' shared work", "now leads" if leading else "stands by for")
        for callback in self._changed:
            callback(leading)

    def _release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.close()  # ends the session: PostgreSQL releases its locks
            self._conn = None

    def start(self) -> None:
        """Try at once and then every ``interval`` seconds, in the background."""
        if self._engine is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="gateway-leadership")

    async def _run(self) -> None:
        while True:
            await asyncio.to_thread(self.try_lead)
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        """Stop trying, and give the lead up (a standby takes it at its next try)."""
        await cancel_and_wait(self._task)
        self._task = None
        await asyncio.to_thread(self._release)
        if self._engine is not None:
            if self._leading:
                _log.info("this gateway gives up the lead: it stops")
            self._leading = False
            self._engine.dispose()
