"""Pending markers: allowed decisions whose outcome the log does not hold yet.

The gateway's decision to allow a query opens a marker in the same transaction as the
decision's entry; the entry that ends the query (its disclosure, the node's refusal, or a
failure) closes it in its own transaction. A marker left open therefore means the log holds
an allowed decision and nothing after it: the gateway's recovery sweeps such markers into
failure entries (``comity.gateway.recovery``), so every allowed decision ends in the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Column, Connection, LargeBinary, MetaData, Table, Text

if TYPE_CHECKING:
    from comity.audit.store import PendingEntry

__all__ = ["PendingMarker", "pending_table", "write_markers"]


@dataclass(frozen=True, slots=True)
class PendingMarker:
    """An allowed decision still open: which query, which node, since when (Unix seconds)."""

    query_digest: bytes
    query_id: str
    node: str
    opened_at: int
    decision_index: int = -1


def pending_table(prefix: str, metadata: MetaData) -> Table:
    """The markers table of the log with ``prefix``."""
    return Table(
        f"{prefix}pending",
        metadata,
        Column("query_digest", LargeBinary, primary_key=True),
        Column("query_id", Text, nullable=False),
        Column("node", Text, nullable=False),
        Column("opened_at", BigInteger, nullable=False),
        Column("decision_idx", BigInteger, nullable=False),
    )


def write_markers(conn: Connection, table: Table, first: int, pending: Sequence[PendingEntry]) -> None:
    """Open and close the markers of a batch whose entries start at index ``first`` (same transaction)."""
    closed = [e.closes for e in pending if e.closes]
    if closed:
        conn.execute(table.delete().where(table.c.query_digest.in_(closed)))
    opened = [
        {
            "query_digest": e.opens.query_digest,
            "query_id": e.opens.query_id,
            "node": e.opens.node,
            "opened_at": e.opens.opened_at,
            "decision_idx": first + i,
        }
        for i, e in enumerate(pending)
        if e.opens is not None
    ]
    if opened:
        conn.execute(table.insert(), opened)
