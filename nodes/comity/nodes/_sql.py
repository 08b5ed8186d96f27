"""Engines and error translation shared by the SQL-backed record sources (internal)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import StaticPool

from comity.core.errors import ConfigError, InternalError
from comity.core.storage_failure import describe_failure
from comity.nodes.errors import StoreNotReady, StoreUnavailable

_log = logging.getLogger("comity.nodes.store")

__all__ = ["Backend", "check_identifier", "db_errors", "make_engine"]

_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,40}")


class Backend:
    """An engine plus a printable, password-free location."""

    def __init__(self, engine: Engine, location: str) -> None:
        self.engine = engine
        self.location = location
        self.name = engine.dialect.name  # "sqlite" or "postgresql"


def check_identifier(value: str, what: str) -> str:
    """Refuse anything but a plain lower-case SQL identifier (it is spliced into DDL)."""
    if not _IDENTIFIER.fullmatch(value):
        raise ConfigError(f"{what} must match [a-z][a-z0-9_]* (at most 41 characters)", field=what)
    return value


def _parse_url(url: str | Path) -> URL:
    text = str(url)
    if "://" not in text:  # a bare file path means SQLite
        return URL.create("sqlite", database=text)
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise ConfigError("store URL is not a valid database URL", field="store.url") from None
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "sqlite":
        return parsed
    raise ConfigError(
        f"unsupported store URL scheme {parsed.drivername!r}",
        field="store.url",
        hint="use a file path, sqlite:///PATH or postgresql://USER@HOST/DB",
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the server read while a load writes; the busy timeout waits out a writer's lock.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(url: str | Path, *, connect_timeout: float = 5.0) -> Backend:
    """An engine for a SQLite path / ``sqlite://`` URL or a ``postgresql://`` URL."""
    parsed = _parse_url(url)
    location = parsed.render_as_string(hide_password=True)
    if parsed.drivername == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": connect_timeout}}
        if memory:  # one shared connection, or each checkout would see an empty database
            kwargs["poolclass"] = StaticPool
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(
            parsed,
            pool_pre_ping=True,
            # UTC sessions: timestamps without a zone in agencies' tables are read as UTC.
            connect_args={"connect_timeout": max(1, round(connect_timeout)), "options": "-c TimeZone=UTC"},
        )
    return Backend(engine, location)


def _missing_table(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return "no such table" in text or sqlstate == "42P01"


@contextmanager
def db_errors(location: str) -> Iterator[None]:
    """Turn database failures into the node's errors: unreachable → StoreUnavailable,
    tables missing → StoreNotReady, anything else → InternalError (details chained, not shown)."""
    # The caller's words say why; where the store is and what the driver said stay in this log.
    try:
        yield
    except DBAPIError as exc:
        if _missing_table(exc):
            _log.error("record store at %s has no record tables", location)
            raise StoreNotReady(
                "the record store has no record tables",
                hint="the node makes them when it starts (comity node serve) or loads records "
                "(comity node load)",
            ) from exc
        _log.error("record store at %s failed: %s", location, exc)
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            raise StoreUnavailable(
                f"the record store cannot be used: {describe_failure(exc)}",
                hint="check that the database is running",
            ) from exc
        raise InternalError(f"the record store failed: {describe_failure(exc)}") from exc
    except PoolTimeout as exc:
        raise StoreUnavailable(
            "the record store has no free connection", hint="too many lookups at once; retry"
        ) from exc
    except SQLAlchemyError as exc:
        _log.error("record store at %s failed: %s", location, exc)
        raise InternalError(f"the record store failed: {describe_failure(exc)}") from exc
