"""Refusals before policy per fixed window, counted beside the log for every gateway over it.

A refusal before policy (``comity.gateway.refusal_limits``) counts against its investigator's
limit and, while inside it, its agency's. The counts of every gateway process over one log
database are one: each refusal is counted in its own entry's transaction, under the log's
sequencer lock, and a ``refused`` entry whose requester is already at a limit there is withdrawn
from its batch (:class:`~comity.audit.errors.EntryWithdrawn`, with :data:`OVER_INVESTIGATOR` or
:data:`OVER_AGENCY`): the caller throttles it instead of logging it. Checking and counting
therefore take no transaction of their own, and no read on a request that is not refused.
Counts of windows that ended are deleted by the first batch of each process that counts a refusal
in a later window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, MetaData, Table, Text, delete, select
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["OVER_AGENCY", "OVER_INVESTIGATOR", "RefusalCount", "RefusalCounts", "refusal_table"]

#: Why a ``refused`` entry was withdrawn: its requester was at the limit in the database.
OVER_INVESTIGATOR = "the investigator is at the limit of refusals in this window"
OVER_AGENCY = "the agency is at the limit of refusals in this window"


@dataclass(frozen=True, slots=True)
class RefusalCount:
    """One refusal before policy to count in window number ``window`` under these limits.

    ``enforce``: withdraw the entry when its requester is at a limit (``refused`` entries);
    a decision entry that names refusals is counted, never withdrawn.
    """

    window: int
    investigator: str
    agency: str
    per_investigator: int
    per_agency: int
    enforce: bool = True


def refusal_table(prefix: str, metadata: MetaData) -> Table:
    """Refusals per window: kind ``i`` (investigator) or ``a`` (agency), and who."""
    return Table(
        f"{prefix}refusal_counts",
        metadata,
        Column("period", BigInteger, primary_key=True, autoincrement=False),
        Column("kind", Text, primary_key=True),
        Column("subject", Text, primary_key=True),
        Column("count", BigInteger, nullable=False),
    )


class RefusalCounts:
    """The refusal counts one batch reads and changes, inside its transaction (under the lock)."""

    def __init__(self, conn: Connection, table: Table, counted: Sequence[RefusalCount]) -> None:
        self._conn, self._table = conn, table
        self._counts: dict[tuple[int, str, str], int] = {}
        self._dirty: set[tuple[int, str, str]] = set()
        self._oldest = min((r.window for r in counted), default=None)
        if counted:
            c = table.c
            windows = sorted({r.window for r in counted})
            subjects = sorted({s for r in counted for s in (r.investigator, r.agency)})
            rows = conn.execute(
                select(c.period, c.kind, c.subject, c.count).where(
                    c.period.in_(windows), c.subject.in_(subjects)
                )
            ).all()
            self._counts = {(int(r[0]), r[1], r[2]): int(r[3]) for r in rows}

    def settle(self, refusal: RefusalCount) -> str | None:
        """Count ``refusal``; or, when it is enforced and its requester is at a limit, why not."""
        i = (refusal.window, "i", refusal.investigator)
        a = (refusal.window, "a", refusal.agency)
        if refusal.enforce:
            if self._counts.get(i, 0) >= refusal.per_investigator:
                return OVER_INVESTIGATOR
            if self._counts.get(a, 0) >= refusal.per_agency:
                return OVER_AGENCY
        self._counts[i] = self._counts.get(i, 0) + 1
        self._dirty.add(i)
        if self._counts[i] <= refusal.per_investigator:
            self._counts[a] = self._counts.get(a, 0) + 1
            self._dirty.add(a)
        return None

    def write(self, *, pruned_before: int) -> int:
        """Write the counts that changed, and drop those of windows before the batch's previous
        one unless that was done up to ``pruned_before``; returns the new ``pruned_before``."""
        if self._oldest is None:
            return pruned_before
        c = self._table.c
        if self._oldest - 1 > pruned_before:
            self._conn.execute(delete(self._table).where(c.period < self._oldest - 1))
            pruned_before = self._oldest - 1
        if not self._dirty:
            return pruned_before
            return
        module: Any = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        rows = [
            {"period": w, "kind": k, "subject": s, "count": self._counts[w, k, s]}
            for w, k, s in sorted(self._dirty)
        ]
        stmt = module.insert(self._table).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["period", "kind", "subject"], set_={"count": stmt.excluded["count"]}
        )
        self._conn.execute(stmt)
        return pruned_before
