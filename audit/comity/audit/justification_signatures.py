"""The justification signatures kept beside the log: their tables, and their deletion at retention.

The gateway stores one keyed MinHash signature per allowed query's justification facts (never the
text), with the requesting agency, a keyed digest of the case reference and the time, so that it
can refuse the same facts under another case reference (``comity.gateway.reuse``). They live in
the log's database, under the log's table prefix, so gateway replicas on one PostgreSQL database
share them; and they go when the openings go: :func:`prune_signatures` deletes those older than
the retention cutoff, called by ``comity audit prune``.
"""

from __future__ import annotations

import logging
from datetime import datetime

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
    delete,
    func,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from comity.audit._schema import make_engines
from comity.audit.errors import AuditUnavailable
from comity.core.storage_failure import describe_failure

__all__ = ["SignatureTables", "open_writer", "prune_signatures"]

_log = logging.getLogger("comity.audit.justification_signatures")

# SQLite gives a rowid (so an auto-assigned id) only to an INTEGER primary key.
_ID = BigInteger().with_variant(Integer(), "sqlite")


class SignatureTables:
    """The signature tables under a log's table prefix (``audit_`` by default)."""

    def __init__(self, prefix: str) -> None:
        self.metadata = MetaData()
        #: One row per stored signature.
        self.signatures = Table(
            f"{prefix}justification_signatures",
            self.metadata,
            Column("id", _ID, primary_key=True, autoincrement=True),
            Column("agency", Text, nullable=False),
            Column("case_digest", LargeBinary, nullable=False),
            Column("at", BigInteger, nullable=False),  # Unix seconds of the decision
            Column("signature", LargeBinary, nullable=False),
            Index(f"{prefix}justification_signatures_at", "at"),
        )
        #: The signature's bands (locality-sensitive hashing), so a lookup is a few index reads.
        self.bands = Table(
            f"{prefix}justification_bands",
            self.metadata,
            Column("signature_id", BigInteger, nullable=False),
            Column("band", Integer, nullable=False),
            Column("value", BigInteger, nullable=False),
            Column("agency", Text, nullable=False),
            PrimaryKeyConstraint("signature_id", "band"),
            Index(f"{prefix}justification_bands_lookup", "agency", "band", "value"),
        )


def open_writer(url: str) -> tuple[str, Engine]:
    """``(dialect, engine)`` writing to the log database at ``url``, as the log's own writer does.

    On SQLite every transaction begins IMMEDIATE (one writer at a time), on PostgreSQL callers
    take their own advisory locks.
    """
    dialect, writer, reader = make_engines(url)
    if reader is not writer:
        reader.dispose()
    return dialect, writer


def prune_signatures(
    engine: Engine, tables: SignatureTables, *, cutoff: datetime, dry_run: bool = False
) -> int:
    """Delete the signatures (and their bands) of decisions before ``cutoff``; returns how many.

    Legal holds do not keep them: a signature is no evidence of anything (it cannot be read back
    into a text without the gateway's key), and it exists only to refuse reuse within the period.
    """
    s, b = tables.signatures, tables.bands
    horizon = int(cutoff.timestamp())
    old = select(s.c.id).where(s.c.at < horizon)
    try:
        tables.metadata.create_all(engine, checkfirst=True)  # a log the gateway never wrote to has none
        with engine.begin() as conn:
            if dry_run:
                return int(conn.execute(select(func.count()).select_from(old.subquery())).scalar_one())
            conn.execute(delete(b).where(b.c.signature_id.in_(old)))
            return int(conn.execute(delete(s).where(s.c.at < horizon)).rowcount or 0)
    except SQLAlchemyError as exc:
        why = describe_failure(exc)
        _log.error("the justification signatures cannot be pruned: %s (%s)", why, exc)
        raise AuditUnavailable(
            f"the justification signatures cannot be pruned: {why}",
            hint="check that the log database is reachable and writable",
            why=why,
        ) from exc
