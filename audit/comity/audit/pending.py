"""Pending markers: allowed decisions whose outcome the log does not hold yet.

The gateway's decision to allow a query opens a marker in the same transaction as the
decision's entry; the entry that ends the query (its disclosure, the node's refusal, or a
failure) closes it in its own transaction. A marker left open therefore means the log holds
an allowed decision and nothing after it: the gateway's recovery sweeps such markers into
failure entries (``comity.gateway.recovery``), so every allowed decision ends in the log.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, LargeBinary, MetaData, Table, Text

__all__ = ["PendingMarker", "pending_table"]


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
