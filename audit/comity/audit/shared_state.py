"""State that every gateway over one log database shares: quota counts and the emergency track.

Both are derived from the log (decision entries counted per UTC day; emergency first uses and
reviews), and both are kept in tables beside it, written in the same transaction as the
entries that change them, under the log's sequencer lock. A decision entry may carry a
:class:`FactsGuard`: the shared facts its policy decision was made on. Inside the batch's
transaction, the store reads the facts as the database holds them at that entry's place in
the log; when they differ (another replica, or a concurrent query of this one, decided in
between), the guard's ``redecide`` makes the decision again on the facts read, and that
decision is what is appended. Checking and counting are thus one step, whatever the number of
processes or concurrent queries, and each logged count equals the count the log's own order
gives (what ``comity policy replay`` checks).

A query that fails because the node or the log was unavailable gives its decision's count
back: its ``failed`` entry carries a :class:`QuotaRelease`, and the count is taken back in
that entry's transaction if, and only if, the decision's pending marker is still open there
(so at most once per decision, whichever replica or recovery appends the failure). The entry
appended says whether it did (``quota_released``), so the log's own order still gives every
count.

An emergency order's first use is appended only if no first use of it is on record, and a
review only while the order awaits one; otherwise the entry is withdrawn from its batch and
the caller learns why (:class:`~comity.audit.errors.EntryWithdrawn`).

A log database created before these tables existed is counted once, in full, when it is first
opened (:func:`seed`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Boolean, Column, Connection, LargeBinary, MetaData, Table, Text, select
from sqlalchemy.dialects import postgresql, sqlite

from comity.audit.errors import InvalidEntry
from comity.audit.events import DecisionEvent, EmergencyEvent, FailedEvent, ValidatedEvent, decode_event

if TYPE_CHECKING:
    from comity.audit.store import PendingEntry

__all__ = [
    "RELEASING_REASONS",
    "EmergencyRow",
    "FactsGuard",
    "QuotaKey",
    "QuotaRelease",
    "Review",
    "SharedFacts",
    "SharedTables",
    "micros",
    "seed",
]

_SEEDED = "shared-state-v1"

#: Failure reasons that give the decision's quota count back: nothing reached the requester
#: because the node, the log, or the gateway (``INCOMPLETE``: recovery after a crash) was
#: unavailable. A refusal by the node, a cancelled call or a missed deadline still counts (the
#: node may have run the query; the caller chose the deadline).
RELEASING_REASONS = frozenset({"UNAVAILABLE", "DISCLOSURE_NOT_LOGGED", "EMERGENCY_NOT_LOGGED", "INCOMPLETE"})


def micros(at: datetime) -> int:
    """Microseconds since the Unix epoch (how the tables keep times: exact and comparable)."""
    return round(at.astimezone(UTC).timestamp() * 1_000_000)


@dataclass(frozen=True, slots=True)
class SharedFacts:
    """The policy facts that come from shared state: quota counts and the emergency track."""

    investigator_today: int = 0
    agency_today: int = 0
    overdue_orders: int = 0
    order_rejected: bool = False


@dataclass(frozen=True, slots=True)
class QuotaKey:
    """Which counters a decision entry adds one to: its investigator's and agency's of its UTC day."""

    day: str
    investigator: str
    agency: str


@dataclass(frozen=True, slots=True)
class QuotaRelease:
    """A failure entry's claim to give back its decision's count (see the module docstring).

    ``key`` is the decision's counters, ``query_digest`` its query (whose pending marker must
    still be open), and ``otherwise`` the entry to append instead when it is not (the same
    failure, ``quota_released`` false).
    """

    key: QuotaKey
    query_digest: bytes
    otherwise: bytes


@dataclass(frozen=True, slots=True)
class FactsGuard:
    """The shared facts a decision was made on, and how to make it again on others.

    ``order_digest`` is the order's (empty without one: the emergency facts are then not read);
    ``now`` the decision time in microseconds, for the overdue count. ``redecide`` runs on the
    log's writer thread inside the batch's transaction and returns the entry to append instead.
    """

    expected: SharedFacts
    order_digest: bytes
    agency: str
    now: int
    redecide: Callable[[SharedFacts], PendingEntry] = field(compare=False)


@dataclass(frozen=True, slots=True)
class EmergencyRow:
    """An emergency order's first use, as the ``emergency`` entry records it."""

    order_digest: bytes
    order_id: str
    agency: str
    issuing_country: str
    authority: str
    first_used: int
    validate_by: int
    status: str = "pending"
    late: bool = False
    reviewed_by: str = ""


@dataclass(frozen=True, slots=True)
class Review:
    """An authority's review of an emergency order (``confirmed`` or ``rejected``)."""

    order_digest: bytes
    status: str
    late: bool
    reviewed_by: str


class SharedTables:
    """The shared-state tables of the log with ``prefix``."""

    def __init__(self, prefix: str, metadata: MetaData) -> None:
        #: Decisions per UTC day: kind ``i`` (investigator) or ``a`` (agency), and who.
        self.quota = Table(
            f"{prefix}quota_counts",
            metadata,
            Column("day", Text, primary_key=True),
            Column("kind", Text, primary_key=True),
            Column("subject", Text, primary_key=True),
            Column("count", BigInteger, nullable=False),
        )
        #: Every emergency order used, with its deadline and its review.
        self.emergency = Table(
            f"{prefix}emergency_uses",
            metadata,
            Column("order_digest", LargeBinary, primary_key=True),
            Column("order_id", Text, nullable=False),
            Column("agency", Text, nullable=False, index=True),
            Column("issuing_country", Text, nullable=False),
            Column("authority", Text, nullable=False),
            Column("first_used", BigInteger, nullable=False),
            Column("validate_by", BigInteger, nullable=False),
            Column("status", Text, nullable=False),
            Column("late", Boolean, nullable=False),
            Column("reviewed_by", Text, nullable=False),
        )
        #: Markers (which one-time counts of the log were made).
        self.meta = Table(
            f"{prefix}shared_meta",
            metadata,
            Column("name", Text, primary_key=True),
        )

    def emergency_use(self, conn: Connection, order_digest: bytes) -> EmergencyRow | None:
        """The record of one emergency order, if it was used."""
        row = conn.execute(
            select(self.emergency).where(self.emergency.c.order_digest == order_digest)
        ).first()
        return None if row is None else _row(row)

    def emergency_uses(self, conn: Connection) -> list[EmergencyRow]:
        """Every emergency order on record, oldest first."""
        rows = conn.execute(select(self.emergency).order_by(self.emergency.c.first_used)).all()
        return [_row(r) for r in rows]


def _row(r: Any) -> EmergencyRow:
    return EmergencyRow(
        bytes(r.order_digest),
        r.order_id,
        r.agency,
        r.issuing_country,
        r.authority,
        int(r.first_used),
        int(r.validate_by),
        r.status,
        bool(r.late),
        r.reviewed_by,
    )


def _upsert(
    conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str], update: list[str]
) -> None:
    if not rows:
        return
    module: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = module.insert(table).values(rows)
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: stmt.excluded[c] for c in update})
    conn.execute(stmt)


def _mark(conn: Connection) -> str:
    """The driver's parameter mark."""
    return "%s" if conn.dialect.name == "postgresql" else "?"


# Table names come from the validated prefix (``Tables``), never from input.
@functools.lru_cache(maxsize=64)
def _read_counts(table: str, mark: str, days: int, subjects: int) -> str:
    return (
        f"SELECT day, kind, subject, count FROM {table} "  # noqa: S608
        f"WHERE day IN ({', '.join([mark] * days)}) AND subject IN ({', '.join([mark] * subjects)})"
    )


@functools.lru_cache(maxsize=4)
def _write_counts(table: str, mark: str) -> str:
    return (
        f"INSERT INTO {table} (day, kind, subject, count) VALUES ({mark}, {mark}, {mark}, {mark}) "  # noqa: S608
        "ON CONFLICT (day, kind, subject) DO UPDATE SET count = excluded.count"
    )


class BatchState:
    """The shared state one batch reads and changes, inside its transaction (under the lock)."""

    def __init__(
        self, conn: Connection, tables: SharedTables, markers: Table, pending: Sequence[PendingEntry]
    ) -> None:
        self._conn, self._t = conn, tables
        self._counts: dict[tuple[str, str, str], int] = {}
        self._dirty: set[tuple[str, str, str]] = set()
        self._uses: dict[bytes, EmergencyRow] = {}
        self._new: set[bytes] = set()
        self._reviewed: set[bytes] = set()
        keys = {k for e in pending if e.counts is not None for k in _keys(e.counts)}
        keys |= {k for e in pending if e.release is not None for k in _keys(e.release.key)}
        releasing = sorted({e.release.query_digest for e in pending if e.release is not None})
        #: Pending markers still open of the queries whose failure would give a count back.
        self._open: set[bytes] = set()
        if releasing:
            m = markers.c
            rows = conn.execute(select(m.query_digest).where(m.query_digest.in_(releasing))).all()
            self._open = {bytes(r[0]) for r in rows}
        if keys:
            # On the driver's cursor of the same transaction, as the append's own statements: the
            # counts are read and written in every batch, where SQL built per call costs more
            # than the statements themselves.
            days = sorted({k[0] for k in keys})
            subjects = sorted({k[2] for k in keys})
            cur = conn.connection.cursor()
            statement = _read_counts(tables.quota.name, _mark(conn), len(days), len(subjects))
            cur.execute(statement, [*days, *subjects])
            self._counts = {(r[0], r[1], r[2]): int(r[3]) for r in cur.fetchall()}
        agencies = {e.guard.agency for e in pending if e.guard is not None and e.guard.order_digest}
        digests = {e.guard.order_digest for e in pending if e.guard is not None and e.guard.order_digest}
        digests |= {e.first_use.order_digest for e in pending if e.first_use is not None}
        digests |= {e.review.order_digest for e in pending if e.review is not None}
        if digests:
            c = tables.emergency.c
            condition: Any = c.order_digest.in_(sorted(digests))
            if agencies:
                condition = condition | (c.agency.in_(sorted(agencies)) & (c.status == "pending"))
            for r in conn.execute(select(tables.emergency).where(condition)).all():
                self._uses[bytes(r.order_digest)] = _row(r)

    def facts(self, guard: FactsGuard, key: QuotaKey) -> SharedFacts:
        """The shared facts at this point of the batch."""
        investigator, agency = (self._counts.get(k, 0) for k in _keys(key))
        if not guard.order_digest:
            return SharedFacts(investigator, agency)
        overdue = sum(
            1
            for u in self._uses.values()
            if u.agency == guard.agency and u.status == "pending" and guard.now > u.validate_by
        )
        use = self._uses.get(guard.order_digest)
        return SharedFacts(investigator, agency, overdue, use is not None and use.status == "rejected")

    def settle(self, entry: PendingEntry) -> PendingEntry | str:
        """The entry to append in ``entry``'s place (decided again if its facts moved), or why none is."""
        if entry.first_use is not None:
            if entry.first_use.order_digest in self._uses:
                return "the emergency order's first use is already on record"
            self._uses[entry.first_use.order_digest] = entry.first_use
            self._new.add(entry.first_use.order_digest)
        if entry.review is not None:
            use = self._uses.get(entry.review.order_digest)
            if use is None:
                return "no use of that emergency order is on record"
            if use.status != "pending":
                return f"the emergency order was already reviewed: {use.status}"
            self._uses[use.order_digest] = replace(
                use, status=entry.review.status, late=entry.review.late, reviewed_by=entry.review.reviewed_by
            )
            self._reviewed.add(use.order_digest)
        key = entry.counts
        if key is not None:
            if entry.guard is not None:
                actual = self.facts(entry.guard, key)
                if actual != entry.guard.expected:
                    entry = replace(entry.guard.redecide(actual), guard=None, counts=key)
            for k in _keys(key):
                self._counts[k] = self._counts.get(k, 0) + 1
                self._dirty.add(k)
        if entry.release is not None:
            entry = self._release(entry, entry.release)
        if entry.closes:
            self._open.discard(entry.closes)
        return entry

    def _release(self, entry: PendingEntry, release: QuotaRelease) -> PendingEntry:
        """Give the decision's count back if its marker is open here; else the entry that says not."""
        if release.query_digest not in self._open:
            return replace(entry, data=release.otherwise, release=None)
        for k in _keys(release.key):
            self._counts[k] = max(0, self._counts.get(k, 0) - 1)
            self._dirty.add(k)
        return entry

    def write(self) -> None:
        """Write what the batch changed (same transaction as its entries)."""
        if self._dirty:
            cur = self._conn.connection.cursor()
            counts = [(d, k, s, self._counts[d, k, s]) for d, k, s in sorted(self._dirty)]
            cur.executemany(_write_counts(self._t.quota.name, _mark(self._conn)), counts)
        rows = [_as_dict(self._uses[d]) for d in sorted(self._new | self._reviewed)]
        _upsert(
            self._conn,
            self._t.emergency,
            rows,
            ["order_digest"],
            ["status", "late", "reviewed_by"],
        )


def _keys(key: QuotaKey) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    return (key.day, "i", key.investigator), (key.day, "a", key.agency)


def _as_dict(u: EmergencyRow) -> dict[str, Any]:
    return {
        "order_digest": u.order_digest,
        "order_id": u.order_id,
        "agency": u.agency,
        "issuing_country": u.issuing_country,
        "authority": u.authority,
        "first_used": u.first_used,
        "validate_by": u.validate_by,
        "status": u.status,
        "late": u.late,
        "reviewed_by": u.reviewed_by,
    }


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seed(conn: Connection, tables: SharedTables, entries: Callable[[], Any]) -> bool:
    """Count a log that has no shared state yet, once (in the caller's locked transaction).

    ``entries`` iterates the log's ``(idx, leaf_hash, data)`` rows. Returns whether it counted.
    Raises :class:`InvalidEntry` for an entry that cannot be read (counting fewer decisions
    than were made would let a quota be exceeded).
    """
    if conn.execute(select(tables.meta.c.name).where(tables.meta.c.name == _SEEDED)).first() is not None:
        return False
    counts: dict[tuple[str, str, str], int] = {}
    uses: dict[bytes, EmergencyRow] = {}
    decided: dict[str, QuotaKey] = {}
    for idx, _leaf, data in entries():
        released = b'"quota_released":true' in data
        if not released and not any(
            k in data for k in (b'"kind":"decision"', b'"kind":"emergency"', b'"kind":"validated"')
        ):
            continue
        try:
            event = decode_event(data)
        except InvalidEntry as exc:
            raise InvalidEntry(f"cannot count the log's shared state: entry {idx}: {exc.message}") from None
        if isinstance(event, DecisionEvent):
            decided[event.query_digest] = QuotaKey(event.at[:10], event.investigator, event.agency)
            for k in _keys(decided[event.query_digest]):
                counts[k] = counts.get(k, 0) + 1
        elif isinstance(event, FailedEvent) and event.quota_released and event.query_digest in decided:
            for k in _keys(decided.pop(event.query_digest)):
                counts[k] = max(0, counts.get(k, 0) - 1)
        elif isinstance(event, EmergencyEvent):
            digest = bytes.fromhex(event.order_digest)
            uses.setdefault(
                digest,
                EmergencyRow(
                    digest,
                    event.order_id,
                    event.agency,
                    event.issuing_country,
                    event.authority,
                    micros(_time(event.at)),
                    micros(_time(event.validate_by)),
                ),
            )
        elif isinstance(event, ValidatedEvent):
            digest = bytes.fromhex(event.order_digest)
            use = uses.get(digest)
            if use is not None and use.status == "pending":
                status = "confirmed" if event.confirmed else "rejected"
                uses[digest] = replace(use, status=status, late=event.late, reviewed_by=event.authority)
    if counts:
        conn.execute(
            tables.quota.insert(),
            [{"day": d, "kind": k, "subject": s, "count": n} for (d, k, s), n in counts.items()],
        )
    if uses:
        conn.execute(tables.emergency.insert(), [_as_dict(u) for u in uses.values()])
    conn.execute(tables.meta.insert().values(name=_SEEDED))
    return True
