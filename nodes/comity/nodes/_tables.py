"""The record store's tables (internal): records, and the selector index that lookups go through."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import BigInteger, Column, ForeignKey, Index, MetaData, SmallInteger, String, Table, Text

__all__ = ["MAX_ID_LENGTH", "MAX_SELECTOR_LENGTH", "Shape", "tables"]

MAX_ID_LENGTH = 128
MAX_SELECTOR_LENGTH = 320


class Shape(NamedTuple):
    """What a lookup statement's SQL depends on (its values are bind parameters)."""

    selectors: int
    categories: bool
    start: bool
    end: bool
    limit: bool
    hit_check: bool


def tables(prefix: str) -> tuple[MetaData, Table, Table]:
    """The records table and the selector index table, names prefixed with ``prefix``.

    The selector table's primary key (type, value, record id) is the index every lookup uses,
    so a lookup reads only the matching entries.
    """
    md = MetaData()
    records = Table(
        f"{prefix}records",
        md,
        Column("record_id", String(MAX_ID_LENGTH), primary_key=True),
        Column("dataset", String(64), nullable=False),
        Column("record_type", String(64), nullable=False),
        Column("category", SmallInteger, nullable=False),
        Column("observed_at", BigInteger, nullable=False),  # microseconds since the epoch, UTC
        Column("fields", Text, nullable=False),
        Index(f"{prefix}records_stats", "dataset", "category", "record_type"),
    )
    selectors = Table(
        f"{prefix}selectors",
        md,
        Column("selector_type", SmallInteger, primary_key=True),
        Column("value", String(MAX_SELECTOR_LENGTH), primary_key=True),
        Column(
            "record_id",
            String(MAX_ID_LENGTH),
            ForeignKey(f"{prefix}records.record_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        # Replacing a record deletes its selector rows by record id.
        Index(f"{prefix}selectors_record", "record_id"),
    )
    return md, records, selectors
