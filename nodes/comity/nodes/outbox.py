"""The node's outbox: every decision and statement the node signed, kept until the log holds it.

A node signs a :class:`~comity.v1.comity_pb2.NodeDecision` for every query its inbound policy
decides, and a ``NodeStatement`` for every answer. Each is written here, durably, *before* it
leaves the node, so a crash of the node, of the gateway or of the link between them can lose
nothing the node put its signature to. The gateway lists the items not yet acknowledged
(:meth:`Outbox.pending`), appends those its log lacks, and acknowledges them
(:meth:`Outbox.acknowledge`); acknowledged items are deleted.

One table, on the node's own SQLite file (``synchronous=FULL``: a signed item survives power
loss) or PostgreSQL database. Database failures become :class:`StoreUnavailable`: a node that
cannot keep its outbox refuses the query (fail closed).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    delete,
    event,
    insert,
    select,
)

from comity.nodes._sql import Backend, check_identifier, db_errors, make_engine
from comity.v1 import comity_pb2 as pb

__all__ = ["DEFAULT_TABLE", "Outbox"]

DEFAULT_TABLE = "comity_node_outbox"
#: At most this many items per :meth:`Outbox.pending` call.
MAX_LIST = 500


def _full_sync(dbapi_conn: Any, _record: Any) -> None:
    # Runs after the store's own pragmas: an item the node signed must survive power loss.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


class Outbox:
    """The node's durable outbox. ``url``: a SQLite path, ``sqlite:///PATH`` or ``postgresql://...``."""

    def __init__(self, url: str | Path, *, table: str = DEFAULT_TABLE) -> None:
        self._backend: Backend = make_engine(url)
        if self._backend.name == "sqlite":
            event.listen(self._backend.engine, "connect", _full_sync)
        self._table = Table(
            check_identifier(table, "outbox table"),
            MetaData(),
            Column("seq", Integer, primary_key=True, autoincrement=True),
            Column("decision", LargeBinary, nullable=False),
            Column("statement", LargeBinary, nullable=True),
            Column("created_at", BigInteger, nullable=False),
        )
        with db_errors(self._backend.location):
            self._table.metadata.create_all(self._backend.engine, checkfirst=True)

    def put(self, decision: pb.Envelope, statement: pb.Envelope | None = None) -> int:
        """Keep a signed decision (and the statement of its answer); returns its sequence number.

        Returns once the item is durable; raises :class:`StoreUnavailable` otherwise.
        """
        row = {
            "decision": decision.SerializeToString(),
            "statement": statement.SerializeToString() if statement is not None else None,
            "created_at": int(time.time()),
        }
        with db_errors(self._backend.location), self._backend.engine.begin() as conn:
            key = conn.execute(insert(self._table).values(**row)).inserted_primary_key
        return int(key[0]) if key else 0

    def pending(self, *, after: int = 0, limit: int = MAX_LIST) -> list[pb.OutboxItem]:
        """Items not yet acknowledged, oldest first, with a sequence number above ``after``."""
        t = self._table
        query = select(t.c.seq, t.c.decision, t.c.statement).where(t.c.seq > after)
        query = query.order_by(t.c.seq).limit(max(1, min(limit or MAX_LIST, MAX_LIST)))
        with db_errors(self._backend.location), self._backend.engine.connect() as conn:
            rows = conn.execute(query).all()
        items = []
        for seq, decision, statement in rows:
            item = pb.OutboxItem(sequence=seq, node_decision=pb.Envelope.FromString(decision))
            if statement is not None:
                item.node_statement.CopyFrom(pb.Envelope.FromString(statement))
            items.append(item)
        return items

    def acknowledge(self, sequences: Sequence[int]) -> int:
        """Forget items the gateway's log now holds; returns how many there were."""
        if not sequences:
            return 0
        t = self._table
        with db_errors(self._backend.location), self._backend.engine.begin() as conn:
            result = conn.execute(delete(t).where(t.c.seq.in_(list(sequences))))
        return int(result.rowcount or 0)

    def drop(self) -> None:
        """Drop the table (tests and tear-down)."""
        self._table.drop(self._backend.engine, checkfirst=True)

    def close(self) -> None:
        """Release the database connections."""
        self._backend.engine.dispose()
