"""The node's own durable state beside its records: own-person outcomes per order, sealed openings.

Two tables in the node's store database (SQLite or PostgreSQL; for a mapped source, the same
database as the agency's tables, which then needs these two tables writable):

- ``<prefix>order_outcomes``: per legal order, how many of its queries met the node's
  own-person rule, so the rule cannot be used as an oracle by repetition (the bundle's
  ``NO_TARGETING_RECORDS_LIMIT`` refuses past its limit);
- ``<prefix>sealed_openings``: the opening of every decision's sealed reason
  (:mod:`comity.nodes.sealed`), for the responding country's legal officers only.

A count is read before the query is decided and taken after, by one atomic increment that returns
the count the query really follows; when another query under the order counted in between, the
node decides again on that count (:meth:`comity.nodes.targeting.Targeting.judge`), so queries
running at once under one order pass its limit no more often than queries one after another.
"""

from __future__ import annotations

import hmac
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from comity.nodes._sql import Backend, check_identifier, db_errors, make_engine
from comity.nodes.lookup import to_micros
from comity.nodes.sealed import SealedOpening

__all__ = ["NodeState"]


class NodeState:
    """Own-person outcomes per order and sealed openings, in the node's database."""

    def __init__(self, url: str | Path, *, table_prefix: str = "comity_") -> None:
        prefix = check_identifier(table_prefix, "table_prefix")
        self._backend: Backend = make_engine(url)
        md = MetaData()
        self._outcomes = Table(
            f"{prefix}order_outcomes",
            md,
            Column("order_id", String(256), primary_key=True),
            Column("outcomes", Integer, nullable=False),
        )
        self._openings = Table(
            f"{prefix}sealed_openings",
            md,
            Column("commitment", LargeBinary(32), primary_key=True),
            Column("query_id", String(128), nullable=False, index=True),
            Column("salt", LargeBinary(32), nullable=False),
            Column("reason", Text, nullable=False),
            Column("sealed_at", BigInteger, nullable=False),
        )
        self._metadata = md
        with db_errors(self._backend.location):
            md.create_all(self._backend.engine, checkfirst=True)

    def drop(self) -> None:
        """Drop both tables and everything in them."""
        with db_errors(self._backend.location):
            self._metadata.drop_all(self._backend.engine, checkfirst=True)

    def outcomes(self, order_id: str) -> int:
        """How many own-person outcomes ``order_id`` has had."""
        t = self._outcomes
        with db_errors(self._backend.location), self._backend.engine.connect() as conn:
            value = conn.execute(select(t.c.outcomes).where(t.c.order_id == order_id)).scalar()
        return int(value or 0)

    def count_outcome(self, order_id: str) -> int:
        """Count one more own-person outcome for ``order_id``; returns the new count (durable)."""
        # One upsert, so two queries counting the first outcome of an order at once both count
        # (an update-then-insert loses the race to a unique violation).
        t = self._outcomes
        dialect_insert = postgresql_insert if self._backend.name == "postgresql" else sqlite_insert
        stmt = (
            dialect_insert(t)
            .values(order_id=order_id, outcomes=1)
            .on_conflict_do_update(index_elements=[t.c.order_id], set_={"outcomes": t.c.outcomes + 1})
            .returning(t.c.outcomes)
        )
        with db_errors(self._backend.location), self._backend.engine.begin() as conn:
            return int(conn.execute(stmt).scalar_one())

    def keep_opening(self, query_id: str, opening: SealedOpening, *, at: datetime) -> None:
        """Keep the opening of a sealed reason (durable before the decision is answered)."""
        row = {
            "commitment": opening.commitment,
            "query_id": query_id,
            "salt": opening.salt,
            "reason": opening.reason.decode(),
            "sealed_at": to_micros(at),
        }
        with db_errors(self._backend.location), self._backend.engine.begin() as conn:
            conn.execute(insert(self._openings).values(**row))

    def openings(self, query_id: str) -> list[SealedOpening]:
        """The openings kept for ``query_id`` (for the responding country's legal officers)."""
        t = self._openings
        stmt = select(t.c.salt, t.c.reason).where(t.c.query_id == query_id).order_by(t.c.sealed_at)
        with db_errors(self._backend.location), self._backend.engine.connect() as conn:
            return [SealedOpening(bytes(salt), reason.encode()) for salt, reason in conn.execute(stmt)]

    def open_sealed(self, query_id: str, commitment: bytes) -> dict[str, Any] | None:
        """The sealed reason of ``query_id`` whose commitment is ``commitment``, as a JSON object;
        None when this node keeps no such opening (for replaying its decisions)."""
        for opening in self.openings(query_id):
            if hmac.compare_digest(opening.commitment, commitment):
                value = json.loads(opening.reason)
                return value if isinstance(value, dict) else None
        return None

    def close(self) -> None:
        """Close every pooled connection."""
        self._backend.engine.dispose()
