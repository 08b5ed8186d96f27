"""The log's tables (one schema for SQLite and PostgreSQL) and how to connect to each."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    create_engine,
    event,
)

from comity.audit.pending import pending_table
from comity.audit.refusal_counts import refusal_table
from comity.audit.shared_state import SharedTables
from comity.core.errors import ConfigError
from comity.core.sql import parse_database_url

_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,30}")


class Tables:
    """The log's tables under one name prefix (so several logs, or tests, share a database)."""

    def __init__(self, prefix: str) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ConfigError(f"table prefix {prefix!r} must be lowercase letters, digits and '_'")
        self.prefix = prefix
        self.metadata = MetaData()
        m = self.metadata
        #: Entry ``idx`` of the log, its leaf hash and its bytes.
        self.entries = Table(
            f"{prefix}entries",
            m,
            Column("idx", BigInteger, primary_key=True, autoincrement=False),
            Column("leaf_hash", LargeBinary, nullable=False),
            Column("data", LargeBinary, nullable=False),
            Index(f"{prefix}entries_leaf_hash", "leaf_hash"),
        )
        #: Every perfect subtree ``(level, idx)``: proofs read a few of these, never the whole tree.
        self.nodes = Table(
            f"{prefix}nodes",
            m,
            Column("level", Integer, nullable=False),
            Column("idx", BigInteger, nullable=False),
            Column("hash", LargeBinary, nullable=False),
            PrimaryKeyConstraint("level", "idx"),
        )
        #: One signed checkpoint note per tree size the log has published.
        self.checkpoints = Table(
            f"{prefix}checkpoints",
            m,
            Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
            Column("root_hash", LargeBinary, nullable=False),
            Column("note", LargeBinary, nullable=False),
        )
        #: Witness cosignature lines (C2SP tlog-cosignature) on a checkpoint.
        self.cosignatures = Table(
            f"{prefix}cosignatures",
            m,
            Column("tree_size", BigInteger, nullable=False),
            Column("witness", Text, nullable=False),
            Column("line", Text, nullable=False),
            PrimaryKeyConstraint("tree_size", "witness"),
        )
        #: Selector commitment openings: readable only by the legal officers' tools.
        self.openings = Table(
            f"{prefix}openings",
            m,
            Column("entry_idx", BigInteger, nullable=False),
            Column("position", Integer, nullable=False),
            Column("commitment", LargeBinary, nullable=False),
            Column("salt", LargeBinary, nullable=False),
            Column("selector_type", Text, nullable=False),
            Column("value", Text, nullable=False),
            PrimaryKeyConstraint("entry_idx", "position"),
        )
        #: Allowed decisions whose outcome is not logged yet (``comity.audit.pending``).
        self.pending = pending_table(prefix, m)
        #: Quota counts and the emergency track (``comity.audit.shared_state``).
        self.shared = SharedTables(prefix, m)
        #: Refusals before policy per window (``comity.audit.refusal_counts``).
        self.refusals = refusal_table(prefix, m)

    @property
    def lock_key(self) -> int:
        """The PostgreSQL advisory lock that makes one sequencer per log (signed 64-bit)."""
        digest = hashlib.sha256(b"comity-audit-sequencer:" + self.prefix.encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


def sqlalchemy_url(url: str) -> tuple[str, str]:
    """``(dialect, SQLAlchemy URL)`` for ``sqlite:///path`` or ``postgresql://...``."""
    parsed = parse_database_url(url, field="audit.url")
    dialect = "sqlite" if parsed.drivername.startswith("sqlite") else "postgresql"
    return dialect, parsed.render_as_string(hide_password=False)


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver, so BEGIN is ours (IMMEDIATE for writers).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed batch survives power loss, not only a process crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front: one sequencer, never a fork.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def make_engines(url: str) -> tuple[str, Engine, Engine]:
    """``(dialect, writer engine, reader engine)`` for a log URL."""
    dialect, sa_url = sqlalchemy_url(url)
    if dialect == "sqlite":
        return dialect, _sqlite_engine(sa_url, immediate=True), _sqlite_engine(sa_url, immediate=False)
    engine = create_engine(sa_url, pool_pre_ping=True)
    return dialect, engine, engine
