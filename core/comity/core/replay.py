"""The replay store: a query id is accepted once, durably, even across gateway processes.

Each accepted query id is inserted into a table whose primary key is the id; the database's
unique constraint, not a read-then-write, decides which of two concurrent requests wins, so
it is safe with several gateway processes on one SQLite file or one PostgreSQL database.

Ids are kept for ``retention`` (the freshness window plus clock skew) after their issued-at
and then pruned. A query issued before that horizon is refused here outright: its id may have
been pruned already, and the freshness check refuses it anyway.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    inspect,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from comity.core import refusals
from comity.core.errors import AlreadyExists, ConfigError, Unavailable
from comity.core.queries import MAX_QUERY_ID_LENGTH
from comity.core.rawsql import RawTransactions
from comity.core.sql import parse_database_url
from comity.core.storage_failure import describe_failure

__all__ = ["DEFAULT_RETENTION", "ReplayStore", "ReplayedQuery"]

DEFAULT_RETENTION = timedelta(minutes=5, seconds=30)
_log = logging.getLogger("comity.replay")
_BASIS = "Prüm Decision 2008/615 art. 30 (one logged query, one answer)"
refusals.register(
    refusals.Check(
        "QUERY_REPLAYED",
        "AUDIT_FIELDS",
        grpc.StatusCode.ALREADY_EXISTS,
        "this query id was accepted before (a query is accepted once); sign a new query with a new id",
        _BASIS,
    ),
    refusals.Check(
        "REPLAY_UNAVAILABLE",
        "AUDIT_FIELDS",
        grpc.StatusCode.UNAVAILABLE,
        "the gateway cannot check this query for replay right now, so it was refused; try again shortly",
        _BASIS,
    ),
)
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Pruning costs a DELETE; doing it at most this often keeps it off the per-request path.
_PRUNE_EVERY_SECONDS = 30.0


class ReplayedQuery(AlreadyExists):
    """The query id was accepted before: the query is a replay (or reuses an id)."""


def _url(url: str | Path) -> URL:
    return parse_database_url(url, field="replay.url")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Transactions are begun explicitly (see comity.core.rawsql), not by the driver.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # A seen id must survive a crash, or a replay would pass after a restart: synchronous=FULL.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _engine(url: str | Path) -> Engine:
    parsed = _url(url)
    if parsed.drivername == "sqlite":
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 5.0}}
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 5})


class ReplayStore:
    """Remembers accepted query ids. ``url``: a SQLite path, ``sqlite:///PATH`` or ``postgresql://...``."""

    def __init__(
        self,
        url: str | Path,
        *,
        retention: timedelta = DEFAULT_RETENTION,
        table: str = "comity_seen_queries",
    ) -> None:
        if not _TABLE_NAME.match(table):
            raise ConfigError("table must be a lower-case SQL identifier", field="replay.table")
        self._retention = retention
        self._engine = _engine(url)
        self._location = self._engine.url.render_as_string(hide_password=True)
        self._table = Table(
            table,
            MetaData(),
            Column("query_id", String(MAX_QUERY_ID_LENGTH), primary_key=True),
            Column("issued_at", BigInteger, nullable=False, index=True),  # Unix seconds
            Column("seen_at", BigInteger, nullable=False),
        )
        self._lock = threading.Lock()
        self._last_prune = 0.0
        self._create_table()
        # The per-query insert runs on the plain driver: SQLAlchemy's statement path costs more
        # than SQLite's insert itself.
        self._raw = RawTransactions(self._engine)
        self._insert = self._raw.sql(
            f"INSERT INTO {table} (query_id, issued_at, seen_at) VALUES (?, ?, ?)"  # noqa: S608 - checked name
        )
        self._duplicate: type[Exception] = self._engine.dialect.loaded_dbapi.IntegrityError

    def _create_table(self) -> None:
        try:
            self._table.metadata.create_all(self._engine, checkfirst=True)
        except SQLAlchemyError as exc:
            # Two processes starting together may both try to create it; one loses the race.
            try:
                if inspect(self._engine).has_table(self._table.name):
                    return
            except SQLAlchemyError:
                pass
            _log.error("replay store at %s cannot be opened: %s", self._location, exc)
            raise Unavailable(
                "the replay store cannot be opened (database unreachable or not writable)",
                violations=[refusals.violation("REPLAY_UNAVAILABLE")],
            ) from None

    def record(self, query_id: str, issued_at: datetime, *, now: datetime) -> None:
        """Accept ``query_id`` once; raise :class:`ReplayedQuery` when it was accepted before.

        Also refuses an id issued before the retention horizon (see the module docstring).
        Raises :class:`Unavailable` if the store cannot be written: fail closed.
        """
        if not query_id or len(query_id) > MAX_QUERY_ID_LENGTH:
            raise refusals.refuse("QUERY_ID", limit=MAX_QUERY_ID_LENGTH)
        if issued_at < now - self._retention:
            raise ReplayedQuery(
                f"query {query_id!r} was issued too long ago for its id to be checked for replay",
                hint="sign a new query with a new id",
                violations=[refusals.violation("QUERY_REPLAYED")],
            )
        row = (query_id, int(issued_at.timestamp()), int(now.timestamp()))
        try:
            with self._raw.transaction() as cur:
                cur.execute(self._insert, row)
        except self._duplicate:
            raise ReplayedQuery(
                f"query id {query_id!r} was used before; a query is accepted once",
                hint="sign a new query with a new id",
                violations=[refusals.violation("QUERY_REPLAYED")],
            ) from None
        except (SQLAlchemyError, self._raw.error) as exc:
            _log.error("replay store at %s cannot be written: %s", self._location, describe_failure(exc))
            raise Unavailable(
                f"the replay store cannot be written ({describe_failure(exc)}), so the query was refused",
                violations=[refusals.violation("REPLAY_UNAVAILABLE")],
            ) from None
        self._maybe_prune(now)

    async def record_async(self, query_id: str, issued_at: datetime, *, now: datetime) -> None:
        """:meth:`record` in a worker thread, so the durable write does not block the event loop."""
        await asyncio.to_thread(self.record, query_id, issued_at, now=now)

    def prune(self, *, now: datetime) -> int:
        """Forget ids issued before the retention horizon; returns how many were removed."""
        horizon = int((now - self._retention).timestamp())
        try:
            with self._engine.begin() as conn:
                result = conn.execute(delete(self._table).where(self._table.c.issued_at < horizon))
        except SQLAlchemyError as exc:
            _log.error("replay store at %s cannot be pruned: %s", self._location, describe_failure(exc))
            raise Unavailable(f"the replay store cannot be pruned ({describe_failure(exc)})") from None
        return int(result.rowcount or 0)

    def _maybe_prune(self, now: datetime) -> None:
        with self._lock:
            tick = time.monotonic()
            if tick - self._last_prune < _PRUNE_EVERY_SECONDS:
                return
            self._last_prune = tick
        self.prune(now=now)

    def drop(self) -> None:
        """Drop the table (tests and tear-down)."""
        self._table.drop(self._engine, checkfirst=True)

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()
