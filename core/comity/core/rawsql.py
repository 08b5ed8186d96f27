"""Short write transactions on the plain DB-API driver of a SQLAlchemy engine.

SQLAlchemy Core costs tens of microseconds per statement (compilation cache keys, parameter
and result processing) around statements that SQLite runs in a few. The stores keep
SQLAlchemy for their schema, migrations and cold reads, and run their per-request writes
here: statements written once, in the driver's own parameter style, on a pooled connection
of the same engine (so its connect-time settings, such as SQLite's ``synchronous=FULL``,
apply unchanged).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from sqlalchemy import Engine

__all__ = ["Cursor", "RawTransactions"]


class Cursor(Protocol):
    """The part of a DB-API cursor the stores use."""

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed."""

    def execute(self, sql: str, params: Any = ..., /) -> Any:
        """Run one statement."""

    def executemany(self, sql: str, rows: Any, /) -> Any:
        """Run one statement once per parameter row."""

    def fetchone(self) -> Any:
        """The next row, or None."""

    def fetchall(self) -> Sequence[Any]:
        """Every remaining row."""


class RawTransactions:
    """Transactions on ``engine``'s driver; statements are written with ``?`` placeholders.

    SQLite connections must have been put in autocommit mode by the engine's ``connect`` event
    (``isolation_level = None``), so that ``BEGIN IMMEDIATE`` is ours; psycopg opens its
    transaction at the first statement.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.dialect = engine.dialect.name
        self._sqlite = self.dialect == "sqlite"
        #: The driver's exception base class: what :meth:`transaction` lets through on failure.
        self.error: type[Exception] = engine.dialect.loaded_dbapi.Error

    def sql(self, statement: str) -> str:
        """``statement`` in the driver's parameter style (``?`` for sqlite3, ``%s`` for psycopg)."""
        return statement if self._sqlite else statement.replace("?", "%s")

    @contextmanager
    def transaction(self, *, immediate: bool = True) -> Iterator[Cursor]:
        """One transaction, committed on success and rolled back on any exception.

        ``immediate``: on SQLite, take the write lock at ``BEGIN`` (``BEGIN IMMEDIATE``), so
        that what the transaction reads first is still the head when it writes.
        """
        fairy = self._engine.raw_connection()
        try:
            cursor = fairy.cursor()
            if self._sqlite:
                cursor.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield cursor
                if self._sqlite:
                    cursor.execute("COMMIT")
                else:
                    fairy.commit()
            except BaseException:
                self._roll_back(fairy)
                raise
        finally:
            fairy.close()

    @staticmethod
    def _roll_back(fairy: Any) -> None:
        try:
            fairy.rollback()
        except Exception:
            # A connection that cannot even roll back is broken: never hand it out again.
            fairy.invalidate()
