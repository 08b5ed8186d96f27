"""The log's storage: entries, perfect subtree hashes, checkpoints, cosignatures and openings.

Synchronous (SQLAlchemy Core for the schema and the reads, one code path for SQLite and
PostgreSQL; the append's own statements are written once and run on the driver's cursor, see
:mod:`comity.core.rawsql`); the asyncio :class:`~comity.audit.log.TransparencyLog` runs it in
a thread. Every append is one
transaction under the sequencer lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL
``pg_advisory_xact_lock``), and re-reads the head inside it, so two processes appending to one
database extend one history and never fork it. Any database failure becomes
:class:`AuditUnavailable`; a failed batch leaves nothing behind.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, TextClause, func, select, text, tuple_
from sqlalchemy.exc import SQLAlchemyError

from comity.audit._recent import RecentTree
from comity.audit._schema import Tables, make_engines
from comity.audit._statements import AppendStatements
from comity.audit.commitments import CommitmentOpening
from comity.audit.errors import AuditUnavailable, EntryNotFound
from comity.audit.pending import PendingMarker
from comity.audit.proof import consistency_proof, inclusion_proof
from comity.audit.refusal_counts import RefusalCount, RefusalCounts
from comity.audit.rfc6962 import hash_leaf
from comity.audit.shared_state import (
    BatchState,
    EmergencyRow,
    FactsGuard,
    QuotaKey,
    QuotaRelease,
    Review,
    seed,
)
from comity.audit.tree import CompactRange, NodeId, perfect_nodes
from comity.core.rawsql import Cursor, RawTransactions
from comity.core.storage_failure import describe_failure

__all__ = [
    "AppendedEntry",
    "Batch",
    "HeadProofs",
    "LogStore",
    "PendingEntry",
    "SignCheckpoint",
    "StoredCosignature",
]

#: Signs the checkpoint of ``(tree size, root hash)`` and returns the signed note.
SignCheckpoint = Callable[[int, bytes], bytes]
_CHUNK = 200  # subtrees per query: well under every driver's parameter limit
#: Entries another writer may have appended since this process's last batch for it to catch up
#: from their leaf hashes (above this, it reads the tree's border from the database instead).
_CATCH_UP = 4096
#: Checkpoint sizes kept for :meth:`LogStore.recent_sizes`.
_RECENT_SIZES = 64


_log = logging.getLogger("comity.audit.store")


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """An entry waiting to be appended, with the selector openings stored beside it."""

    data: bytes
    openings: tuple[CommitmentOpening, ...] = ()
    #: A pending marker this entry opens (an allowed decision), or the query digest whose marker it closes.
    opens: PendingMarker | None = None
    closes: bytes = b""
    #: A decision entry: the quota counters it adds one to, and the shared facts it was decided on.
    counts: QuotaKey | None = None
    guard: FactsGuard | None = None
    #: An emergency order's first use, or its review (``comity.audit.shared_state``).
    first_use: EmergencyRow | None = None
    review: Review | None = None
    #: A failure entry that gives its decision's quota count back (if its marker is still open).
    release: QuotaRelease | None = None
    #: A refusal before policy, counted against its requester's limits (``comity.audit.refusal_counts``).
    refusal: RefusalCount | None = None


@dataclass(frozen=True, slots=True)
class StoredCosignature:
    """A verified witness cosignature line to store on the checkpoint of ``tree_size``."""

    tree_size: int
    witness: str
    line: str


@dataclass(frozen=True, slots=True)
class AppendedEntry:
    """Where an entry landed and the proof that it is in the batch's checkpoint.

    ``data`` is the entry appended: the one given, or the decision made again on shared facts
    that had moved (``comity.audit.shared_state``).
    """

    index: int
    leaf_hash: bytes
    inclusion: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Batch:
    """The result of one committed batch: its entries and the one checkpoint covering them."""

    tree_size: int
    root_hash: bytes
    checkpoint: bytes
    #: One per entry given, in order: where it landed, or why it was withdrawn.
    entries: tuple[AppendedEntry | str, ...]


class _DictSource:
    def __init__(self, hashes: dict[NodeId, bytes]) -> None:
        self._hashes = hashes

    def node_hashes(self, ids: Sequence[NodeId]) -> list[bytes]:
        return [self._hashes[i] for i in ids]


@functools.lru_cache(maxsize=256)
def _nodes_query(table: str, count: int) -> TextClause:
    """``count`` primary-key lookups in one statement, built once per size.

    An OR of key lookups, not a row-value ``IN``: SQLite scans the whole table for the latter.
    """
    terms = " OR ".join(f"(level = :l{k} AND idx = :i{k})" for k in range(count))
    return text(f"SELECT level, idx, hash FROM {table} WHERE {terms}")  # noqa: S608 - names are ours


def _settle(entry: PendingEntry, state: BatchState, limits: RefusalCounts) -> PendingEntry | str:
    """The entry to append in ``entry``'s place, or why none is (see ``BatchState.settle``)."""
    if entry.refusal is not None:
        why = limits.settle(entry.refusal)
        if why is not None:
            return why
    return state.settle(entry)


class _ConnectionSource:
    """Reads subtree hashes inside one open read transaction (one snapshot, no extra round trips)."""

    def __init__(self, store: LogStore, conn: Connection) -> None:
        self._store, self._conn = store, conn

    def node_hashes(self, ids: Sequence[NodeId]) -> list[bytes]:
        hashes = self._store._fetch_nodes(self._conn, ids)
        if len(hashes) != len(ids):
            raise EntryNotFound("a subtree the proof needs is missing from the log database")
        return hashes


@dataclass(frozen=True)
class HeadProofs:
    """The newest checkpoint with an entry's inclusion proof and consistency proofs to it."""

    tree_size: int
    note: bytes
    inclusion: list[bytes]
    consistency: list[tuple[int, list[bytes]]]  # (first size, proof from it to tree_size)


@dataclass(frozen=True, slots=True)
class _CaughtUp:
    """Another writer's appends, from size ``before`` (whose border it was) to ``after``."""

    before: int
    border: tuple[tuple[NodeId, bytes], ...]
    created: tuple[tuple[NodeId, bytes], ...]
    after: int
    sizes: tuple[int, ...]  # the checkpoints it published in between, ascending


class LogStore:
    """A log database. Open with :meth:`open`; every method is safe to call from any thread."""

    def __init__(self, url: str, *, table_prefix: str = "audit_") -> None:
        self.tables = Tables(table_prefix)
        self.dialect, self._writer, self._reader = make_engines(url)
        self._raw = RawTransactions(self._writer)
        self._sql = AppendStatements(self.tables, self._raw)
        self._range: CompactRange | None = None  # cached border; valid only if its size is the head
        self._recent = RecentTree()
        # The newest checkpoint sizes of the log, whichever process published them, ascending;
        # replaced whole (never mutated), so any thread reads it in one reference read.
        self._sizes: tuple[int, ...] = ()
        # Refusal counts of windows before this one are deleted (``comity.audit.refusal_counts``).
        self._refusals_pruned = -1

    @classmethod
    def open(cls, url: str, *, table_prefix: str = "audit_", create: bool = True) -> LogStore:
        """Connect to ``sqlite:///path`` or ``postgresql://...``, creating the tables if asked."""
        store = cls(url, table_prefix=table_prefix)
        if create:
            with store._guard("create the log tables"):
                store.tables.metadata.create_all(store._writer)
            with store._guard("count the log's shared state"), store._writer.begin() as conn:
                store._lock(conn)
                if seed(conn, store.tables.shared, lambda: store._rows(conn)):
                    _log.info("quota counts and emergency track counted from the log")
        return store

    def _lock(self, conn: Connection) -> None:
        if self.dialect == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(self.tables.lock_key)))

    def _rows(self, conn: Connection) -> Iterator[tuple[int, bytes, bytes]]:
        c = self.tables.entries.c
        after = -1
        while True:
            query = select(c.idx, c.leaf_hash, c.data).where(c.idx > after).order_by(c.idx).limit(1000)
            rows = conn.execute(query).all()
            yield from ((int(r.idx), bytes(r.leaf_hash), bytes(r.data)) for r in rows)
            if len(rows) < 1000:
                return
            after = rows[-1].idx

    @property
    def writer(self) -> Engine:
        """The writing engine, for the tables kept beside the log (justification signatures)."""
        return self._writer

    def close(self) -> None:
        """Release every connection."""
        self._writer.dispose()
        self._reader.dispose()

    def drop(self) -> None:
        """Delete the log's tables (tests and throw-away logs only)."""
        self.tables.metadata.drop_all(self._writer)
        self._range = None
        self._recent.forget()

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (SQLAlchemyError, self._raw.error) as exc:
            # The words say why (disk full, unreachable); the driver's details stay in this log.
            why = describe_failure(exc)
            _log.error("the audit log cannot %s: %s (%s)", doing, why, exc)
            raise AuditUnavailable(
                f"the audit log cannot {doing}: {why}",
                hint="check that the log database is reachable and writable",
                why=why,
            ) from exc

    @contextmanager
    def _read(self, doing: str) -> Iterator[Connection]:
        with self._guard(doing), self._reader.begin() as conn:
            yield conn

    # ------------------------------------------------------------------ writing

    def append_batch(
        self,
        pending: Sequence[PendingEntry],
        sign: SignCheckpoint,
        cosignatures: Sequence[StoredCosignature] = (),
    ) -> Batch:
        """Append entries, one signed checkpoint and verified cosignatures in one transaction (one fsync).

        With no entries, publishes the checkpoint of the current size if it has none yet (the
        empty log's first checkpoint). Raises :class:`AuditUnavailable`; nothing is kept then.
        """
        given = pending
        with self._guard("append entries"), self._writer.begin() as conn:
            self._lock(conn)
            state = BatchState(conn, self.tables.shared, self.tables.pending, given)
            limits = RefusalCounts(conn, self.tables.refusals, [e.refusal for e in given if e.refusal])
            settled = [_settle(e, state, limits) for e in given]
            pending = [e for e in settled if not isinstance(e, str)]
            state.write()
            pruned = limits.write(pruned_before=self._refusals_pruned)
            # The append's own statements run on the driver's cursor of the same transaction.
            cur: Cursor = conn.connection.cursor()
            compact, caught_up = self._border(cur)
            old = dict(compact.nodes())
            created: dict[NodeId, bytes] = {}
            for item in pending:
                created.update(compact.append(hash_leaf(item.data)))
            root = compact.root()
            if pending:
                self._insert(cur, compact.size - len(pending), pending, created)
            q = self._sql
            note = None
            if not pending:  # only the empty log's first call can find its checkpoint already there
                cur.execute(q.checkpoint_note, (compact.size,))
                row = cur.fetchone()
                note = None if row is None else bytes(row[0])
            if note is None:
                note = sign(compact.size, root)
                cur.execute(q.insert_checkpoint, (compact.size, root, note))
            if cosignatures:
                rows = [(c.tree_size, c.witness, c.line) for c in cosignatures]
                cur.executemany(q.upsert_cosignature, rows)
        self._range = compact
        self._refusals_pruned = pruned
        sizes = self._sizes
        if caught_up is not None:  # another writer's appends, committed before this one
            self._recent.committed(caught_up.before, caught_up.border, caught_up.created, caught_up.after)
            sizes += caught_up.sizes
        self._recent.committed(compact.size - len(pending), old.items(), created.items(), compact.size)
        if pending or not sizes or sizes[-1] != compact.size:
            sizes += (compact.size,)
        self._sizes = sizes[-_RECENT_SIZES:]
        source = _DictSource(old | created)
        first = compact.size - len(pending)
        appended: list[AppendedEntry | str] = []
        i = first
        for settled_item in settled:
            if isinstance(settled_item, str):
                appended.append(settled_item)
                continue
            item = settled_item
            appended.append(
                AppendedEntry(i, created[(0, i)], tuple(inclusion_proof(i, compact.size, source)), item.data)
            )
            i += 1
        return Batch(compact.size, root, bytes(note), tuple(appended))

    def _insert(
        self, cur: Cursor, first: int, pending: Sequence[PendingEntry], created: dict[NodeId, bytes]
    ) -> None:
        q = self._sql
        entries = [(first + i, created[(0, first + i)], e.data) for i, e in enumerate(pending)]
        cur.executemany(q.insert_entry, entries)
        cur.executemany(q.insert_node, [(lv, i, h) for (lv, i), h in created.items()])
        openings = [
            (first + i, p, o.commitment, o.salt, o.selector_type, o.value)
            for i, e in enumerate(pending) for p, o in enumerate(e.openings)
        ]  # fmt: skip
        if openings:
            cur.executemany(q.insert_opening, openings)
        closed = [(e.closes,) for e in pending if e.closes]
        if closed:
            cur.executemany(q.close_marker, closed)
        opened = [
            (e.opens.query_digest, e.opens.query_id, e.opens.node, e.opens.opened_at, first + i)
            for i, e in enumerate(pending)
            if e.opens is not None
        ]
        if opened:
            cur.executemany(q.open_marker, opened)

    def _border(self, cur: Cursor) -> tuple[CompactRange, _CaughtUp | None]:
        """The tree's right border at the database's head, read under the lock (cached when current).

        When another writer appended since this process's last batch, the border is extended
        with the leaf hashes it appended (checked against the root of the checkpoint it signed),
        which also gives every subtree hash it made: proofs to and from its checkpoints then
        need no SQL here either. The caught-up part is returned with the border.
        """
        cur.execute(self._sql.head)
        size = int(cur.fetchone()[0])
        cached = self._range
        if cached is not None and cached.size == size:
            return cached.copy(), None
        if cached is not None and 0 < size - cached.size <= _CATCH_UP:
            caught_up = self._catch_up(cur, cached, size)
            if caught_up is not None:
                return caught_up
        ids = perfect_nodes(0, size)
        hashes = self._fetch_nodes_raw(cur, ids)
        if len(hashes) != len(ids):
            raise AuditUnavailable(
                f"the log database is damaged: subtree hashes of its {size} entries are missing",
                hint="run the offline verifier on the log database",
            )
        return CompactRange(size, hashes), None

    def _catch_up(
        self, cur: Cursor, cached: CompactRange, size: int
    ) -> tuple[CompactRange, _CaughtUp] | None:
        cur.execute(self._sql.leaf_hashes, (cached.size, size))
        rows = cur.fetchall()
        if [int(r[0]) for r in rows] != list(range(cached.size, size)):
            return None
        compact = cached.copy()
        border = tuple(compact.nodes())
        created: dict[NodeId, bytes] = {}
        for row in rows:
            created.update(compact.append(bytes(row[1])))
        cur.execute(self._sql.checkpoints_between, (cached.size, size))
        published = [(int(r[0]), bytes(r[1])) for r in cur.fetchall()]
        if not published or published[-1] != (size, compact.root()):
            # Not the tree the other writer signed: read the border as stored, and say so.
            _log.warning(
                "the log's entries %d to %d do not give the root signed at size %d", cached.size, size, size
            )
            return None
        return compact, _CaughtUp(
            cached.size, border, tuple(created.items()), size, tuple(s for s, _ in published)
        )

    def _fetch_nodes_raw(self, cur: Cursor, ids: Sequence[NodeId]) -> list[bytes]:
        found: dict[tuple[int, int], bytes] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            cur.execute(self._sql.nodes(len(chunk)), [v for node in chunk for v in node])
            found.update({(int(r[0]), int(r[1])): bytes(r[2]) for r in cur.fetchall()})
        return [found[i] for i in ids if i in found]

    def add_cosignature(self, tree_size: int, witness: str, line: str) -> None:
        """Store a witness's cosignature line on the checkpoint of ``tree_size`` (replacing an older one)."""
        with self._guard("store a cosignature"), self._raw.transaction() as cur:
            cur.execute(self._sql.upsert_cosignature, (tree_size, witness, line))

    # ------------------------------------------------------------------ reading

    def _fetch_nodes(self, conn: Connection, ids: Sequence[NodeId]) -> list[bytes]:
        nodes = self.tables.nodes
        found: dict[tuple[int, int], bytes] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            params = {
                f"{name}{k}": value
                for k, node in enumerate(chunk)
                for name, value in zip("li", node, strict=True)
            }
            rows = conn.execute(_nodes_query(nodes.name, len(chunk)), params)
            found.update({(r.level, r.idx): bytes(r.hash) for r in rows})
        return [found[i] for i in ids if i in found]

    def node_hashes(self, ids: Sequence[NodeId]) -> list[bytes]:
        """Stored perfect subtree hashes (the :class:`~comity.audit.proof.NodeSource` protocol)."""
        with self._read("read subtree hashes") as conn:
            hashes = self._fetch_nodes(conn, ids)
        if len(hashes) != len(ids):
            raise EntryNotFound("a subtree the proof needs is not in the log; is the tree size published?")
        return hashes

    def tree_size(self) -> int:
        """The size of the latest published checkpoint."""
        with self._read("read the tree size") as conn:
            size = conn.execute(select(func.max(self.tables.checkpoints.c.tree_size))).scalar()
        return int(size or 0)

    def head(self) -> tuple[int, int]:
        """``(stored entries, latest checkpoint size)``, read in one transaction (equal unless damaged)."""
        t = self.tables
        with self._read("read the head") as conn:
            entries = conn.execute(select(func.coalesce(func.max(t.entries.c.idx) + 1, 0))).scalar_one()
            size = conn.execute(select(func.coalesce(func.max(t.checkpoints.c.tree_size), 0))).scalar_one()
        return int(entries), int(size)

    def checkpoint(self, tree_size: int | None = None) -> bytes:
        """The signed checkpoint note of ``tree_size`` (default: the latest)."""
        c = self.tables.checkpoints.c
        query = select(c.note).order_by(c.tree_size.desc()).limit(1)
        if tree_size is not None:
            query = select(c.note).where(c.tree_size == tree_size)
        with self._read("read a checkpoint") as conn:
            note = conn.execute(query).scalar()
        if note is None:
            raise EntryNotFound(f"the log published no checkpoint of size {tree_size}")
        return bytes(note)

    def checkpoint_sizes(self) -> list[int]:
        """Every tree size the log published a checkpoint for, ascending."""
        c = self.tables.checkpoints.c
        with self._read("list checkpoints") as conn:
            return [int(s) for s in conn.execute(select(c.tree_size).order_by(c.tree_size)).scalars()]

    def head_proofs(self, index: int, since: int, *, limit: int = 4) -> HeadProofs:
        """The newest checkpoint, entry ``index``'s inclusion proof in it, and consistency proofs to it
        from ``since`` and from the ``limit`` newest checkpoints published after ``since``.

        All read in one snapshot: what a query forwarded to a node whose witness was at ``since``
        a moment ago carries, whichever of those checkpoints it has reached since.
        """
        c = self.tables.checkpoints.c
        with self._read("build proofs to the newest checkpoint") as conn:
            row = conn.execute(select(c.tree_size, c.note).order_by(c.tree_size.desc()).limit(1)).one()
            size, note = int(row.tree_size), bytes(row.note)
            if not 0 <= index < size:
                raise EntryNotFound(f"entry {index} is not within the log's {size} entries")
            source = _ConnectionSource(self, conn)
            inclusion = inclusion_proof(index, size, source)
            firsts = [since] if 0 < since < size else []
            if since < size:
                after = select(c.tree_size).where(c.tree_size > since, c.tree_size < size)
                newest = conn.execute(after.order_by(c.tree_size.desc()).limit(limit)).scalars()
                firsts += [int(f) for f in newest if int(f) > 0]
            proofs = [(first, consistency_proof(first, size, source)) for first in firsts]
        return HeadProofs(size, note, inclusion, proofs)

    def cosignatures(self, tree_size: int) -> list[str]:
        """The witness cosignature lines stored for the checkpoint of ``tree_size``, by witness name."""
        c = self.tables.cosignatures.c
        with self._read("read cosignatures") as conn:
            rows = conn.execute(select(c.line).where(c.tree_size == tree_size).order_by(c.witness)).scalars()
            return list(rows)

    def cosigners(self, *, below: int | None = None, limit: int = 256) -> list[tuple[int, tuple[str, ...]]]:
        """``(tree size, witness names)`` of cosigned checkpoints, newest first (sizes under ``below``)."""
        c = self.tables.cosignatures.c
        sizes = select(c.tree_size).distinct()
        if below is not None:
            sizes = sizes.where(c.tree_size < below)
        with self._read("read cosigners") as conn:
            wanted = [int(s) for s in conn.execute(sizes.order_by(c.tree_size.desc()).limit(limit)).scalars()]
            if not wanted:
                return []
            rows = conn.execute(select(c.tree_size, c.witness).where(c.tree_size.in_(wanted))).all()
        names: dict[int, list[str]] = {size: [] for size in wanted}
        for row in rows:
            names[int(row.tree_size)].append(str(row.witness))
        return [(size, tuple(sorted(names[size]))) for size in wanted]

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)``; raises :class:`EntryNotFound` unless all of them exist."""
        c = self.tables.entries.c
        with self._read("read entries") as conn:
            rows = conn.execute(
                select(c.idx, c.data).where(c.idx >= start, c.idx < end).order_by(c.idx)
            ).all()
        if [r.idx for r in rows] != list(range(start, end)):
            raise EntryNotFound(f"the log has no entries [{start}, {end})")
        return [bytes(r.data) for r in rows]

    def iter_entries(self, end: int, *, chunk: int = 1000) -> Iterator[tuple[int, bytes, bytes]]:
        """Every stored ``(idx, leaf_hash, data)`` row below ``end``, in index order, read in chunks."""
        c = self.tables.entries.c
        after = -1
        while True:
            with self._read("read entries") as conn:
                query = select(c.idx, c.leaf_hash, c.data).where(c.idx > after, c.idx < end)
                query = query.order_by(c.idx).limit(chunk)
                rows = conn.execute(query).all()
            yield from ((int(r.idx), bytes(r.leaf_hash), bytes(r.data)) for r in rows)
            if len(rows) < chunk:
                return
            after = rows[-1].idx

    def iter_nodes(self, level: int, *, chunk: int = 5000) -> Iterator[tuple[int, bytes]]:
        """Every stored ``(idx, hash)`` of one level, in index order."""
        c = self.tables.nodes.c
        after = -1
        while True:
            with self._read("read subtree hashes") as conn:
                query = (
                    select(c.idx, c.hash).where(c.level == level, c.idx > after).order_by(c.idx).limit(chunk)
                )
                rows = conn.execute(query).all()
            yield from ((int(r.idx), bytes(r.hash)) for r in rows)
            if len(rows) < chunk:
                return
            after = rows[-1].idx

    def iter_openings(
        self, end: int, *, chunk: int = 2000
    ) -> Iterator[tuple[int, int, bytes, CommitmentOpening]]:
        """Every stored ``(entry idx, position, commitment, opening)`` below entry ``end``, in order."""
        c = self.tables.openings.c
        after = (-1, -1)
        while True:
            with self._read("read openings") as conn:
                query = select(c.entry_idx, c.position, c.commitment, c.salt, c.selector_type, c.value)
                query = query.where(tuple_(c.entry_idx, c.position) > after, c.entry_idx < end)
                rows = conn.execute(query.order_by(c.entry_idx, c.position).limit(chunk)).all()
            for r in rows:
                yield (
                    int(r.entry_idx),
                    int(r.position),
                    bytes(r.commitment),
                    CommitmentOpening(bytes(r.salt), r.selector_type, r.value),
                )
            if len(rows) < chunk:
                return
            after = (rows[-1].entry_idx, rows[-1].position)

    def leaf_index(self, leaf_hash: bytes) -> int:
        """The first index whose leaf hash is ``leaf_hash``."""
        c = self.tables.entries.c
        with self._read("look up a leaf hash") as conn:
            index = conn.execute(select(func.min(c.idx)).where(c.leaf_hash == leaf_hash)).scalar()
        if index is None:
            raise EntryNotFound("no entry in the log has that leaf hash")
        return int(index)

    def present(self, leaf_hashes: Sequence[bytes]) -> set[bytes]:
        """Which of ``leaf_hashes`` some entry of the log has (in one statement per chunk)."""
        c = self.tables.entries.c
        found: set[bytes] = set()
        unique = list(dict.fromkeys(leaf_hashes))
        with self._read("look up leaf hashes") as conn:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                rows = conn.execute(select(c.leaf_hash).where(c.leaf_hash.in_(chunk)).distinct()).scalars()
                found.update(bytes(h) for h in rows)
        return found

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """The inclusion proof of entry ``index`` in the tree of ``tree_size`` (a published size or not)."""
        with self._read("build an inclusion proof") as conn:
            self._check_sizes(conn, index + 1, tree_size)
            return inclusion_proof(index, tree_size, _ConnectionSource(self, conn))

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The proof that the tree of ``second`` entries extends the tree of ``first``."""
        with self._read("build a consistency proof") as conn:
            self._check_sizes(conn, first, second)
            return consistency_proof(first, second, _ConnectionSource(self, conn))

    def recent_inclusion_proof(self, index: int, tree_size: int) -> list[bytes] | None:
        """:meth:`inclusion_proof` from the hashes this process committed lately, or None if it needs SQL."""
        return self._recent.inclusion_proof(index, tree_size)

    def recent_sizes(self) -> tuple[int, ...]:
        """The newest checkpoint sizes this process has seen committed, ascending (at most
        64): its own and those other writers to the same database published before its batches."""
        return self._sizes

    def recent_consistency_proof(self, first: int, second: int) -> list[bytes] | None:
        """:meth:`consistency_proof` from hashes this process committed lately, or None if it needs SQL."""
        return self._recent.consistency_proof(first, second)

    def _check_sizes(self, conn: Connection, low: int, high: int) -> None:
        size = int(
            conn.execute(select(func.coalesce(func.max(self.tables.checkpoints.c.tree_size), 0))).scalar_one()
        )
        if not 0 <= low <= high <= size:
            raise EntryNotFound(f"sizes {low} and {high} are not within the log's {size} entries")

    def emergency_use(self, order_digest: bytes) -> EmergencyRow | None:
        """The shared record of one emergency order, if it was used."""
        with self._read("read the emergency track") as conn:
            return self.tables.shared.emergency_use(conn, order_digest)

    def emergency_uses(self) -> list[EmergencyRow]:
        """Every emergency order on the shared record, oldest first."""
        with self._read("read the emergency track") as conn:
            return self.tables.shared.emergency_uses(conn)

    def pending_markers(self) -> list[PendingMarker]:
        """Every open pending marker, oldest first (``comity.audit.pending``)."""
        c = self.tables.pending.c
        with self._read("read pending markers") as conn:
            rows = conn.execute(select(self.tables.pending).order_by(c.opened_at, c.decision_idx)).all()
        return [
            PendingMarker(bytes(r.query_digest), r.query_id, r.node, int(r.opened_at), int(r.decision_idx))
            for r in rows
        ]

    def openings(self, index: int) -> list[CommitmentOpening]:
        """The selector openings stored with entry ``index`` (for the legal officers' tools only)."""
        c = self.tables.openings.c
        with self._read("read openings") as conn:
            query = select(c.salt, c.selector_type, c.value).where(c.entry_idx == index).order_by(c.position)
            return [CommitmentOpening(bytes(r.salt), r.selector_type, r.value) for r in conn.execute(query)]

    def delete_openings(self, indices: Sequence[int]) -> int:
        """Delete the selector openings of entries ``indices`` (retention); returns how many rows went.

        Entries, tree and checkpoints are untouched, so every proof still verifies; only the link
        from a commitment back to its selector is gone.
        """
        c = self.tables.openings.c
        deleted = 0
        with self._guard("delete openings"), self._writer.begin() as conn:
            for start in range(0, len(indices), 500):
                chunk = list(indices[start : start + 500])
                deleted += conn.execute(self.tables.openings.delete().where(c.entry_idx.in_(chunk))).rowcount
        return deleted
