"""The console's local mirror of the log: SQLite, one row per entry, indexed for every filter.

Rows at and above the verified size are staged: written while a sync round fetches them and
shown by no page until the round's quorum checkpoint confirms them (:meth:`Mirror.promote`).
Every read takes the verified size first, so a page never shows an entry that was not checked.

The columns beside the entry bytes are derived from them (:func:`columns`) and exist only so
that filters can use indexes; the mirror's own check re-derives them (an edited column is a
tampered mirror like an edited entry). The comparisons are case-insensitive (``NOCASE``).

A mirror kept for one country's legal officers (``reader``) holds the contents only of the
entries that country may read: every other entry is a *withheld* row, kind ``withheld``, no
bytes, and its leaf hash in ``withheld`` (enough to recompute the tree, nothing to read). A
mirror remembers the country it was made for and refuses to open for another.

Every SQL text built here joins only this module's own constants (column names, filter
conditions); values always travel as parameters, hence the ``noqa: S608`` marks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comity.audit.errors import AuditError
from comity.audit.events import Event, decode_event
from comity.core.errors import ConfigError

__all__ = [
    "FILTERS",
    "WITHHELD",
    "EntryRow",
    "Filters",
    "Mirror",
    "Page",
    "VerifiedHead",
    "Withheld",
    "columns",
    "withheld_columns",
]

#: The kind of a withheld row.
WITHHELD = "withheld"

#: The filters the entry list offers, by query parameter.
FILTERS = (
    "kind",
    "country",
    "agency",
    "investigator",
    "node",
    "order_id",
    "query_id",
    "decision",
    "rule",
    "since",
    "until",
)
_COLUMNS = (
    "at",
    "day",
    "kind",
    "query_id",
    "agency",
    "country",
    "investigator",
    "order_id",
    "decision",
    "node",
)
_COLS = ", ".join(_COLUMNS)
_E_COLS = ", ".join(f"e.{c}" for c in _COLUMNS)
# An entry's columns, then its bytes (kept in their own table, so that counts and filters read
# only the narrow rows).
_WITH_DATA = f"e.idx, {_E_COLS}, (SELECT d.data FROM entry_data d WHERE d.idx = e.idx)"  # noqa: S608
_INDEXED = ("kind", "query_id", "agency", "country", "investigator", "order_id", "decision", "node", "at")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    {", ".join(f"{c} TEXT NOT NULL DEFAULT '' COLLATE NOCASE" for c in _COLUMNS)}
);
CREATE TABLE IF NOT EXISTS entry_data (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entry_rules (
    rule TEXT NOT NULL COLLATE NOCASE,
    idx INTEGER NOT NULL,
    PRIMARY KEY (rule, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS withheld (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
{"".join(f"CREATE INDEX IF NOT EXISTS entries_{c} ON entries({c}, idx);" for c in _INDEXED)}
CREATE INDEX IF NOT EXISTS entry_rules_idx ON entry_rules(idx);
"""


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One mirrored entry: its index, its derived columns and its event (None if undecodable)."""

    idx: int
    at: str
    kind: str
    query_id: str
    agency: str
    country: str
    investigator: str
    order_id: str
    decision: str
    node: str
    data: bytes
    event: Event | None


@dataclass(frozen=True, slots=True)
class Withheld:
    """An entry this mirror's country may not read: only its leaf hash."""

    leaf_hash: bytes


def withheld_columns() -> dict[str, str]:
    """The columns of a withheld row."""
    return {c: "" for c in _COLUMNS} | {"kind": WITHHELD}


@dataclass(frozen=True, slots=True)
class VerifiedHead:
    """What the mirror holds as verified: a size, its root and the quorum checkpoint note proving it."""

    size: int = 0
    root: bytes = b""
    note: bytes = b""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the entry list, newest first, with what paging links need."""

    rows: tuple[EntryRow, ...]
    total: int
    number: int
    pages: int
    newer: int | None  # the cursor for the previous (newer) page: show entries after this index
    older: int | None  # the cursor for the next (older) page: show entries before this index


@dataclass(frozen=True, slots=True)
class Filters:
    """The entry list's filters, each optional; times are ISO 8601 strings compared as text."""

    values: Mapping[str, str]

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> Filters:
        """Keep the known, non-empty filters, trimmed; dates become bounds on the entry time."""
        values = {k: raw[k].strip() for k in FILTERS if raw.get(k, "").strip()}
        return cls(values)

    def where(self) -> tuple[str, list[object]]:
        """An SQL condition over ``entries e`` and its parameters."""
        parts: list[str] = []
        params: list[object] = []
        for name, value in self.values.items():
            if name == "rule":
                # IN, not EXISTS: the (rule, idx) key then drives the query.
                parts.append("e.idx IN (SELECT r.idx FROM entry_rules r WHERE r.rule = ?)")
                params.append(value)
            elif name == "since":
                parts.append("e.at >= ?")
                params.append(_time_bound(value, end=False))
            elif name == "until":
                parts.append("e.at < ?")
                params.append(_time_bound(value, end=True))
            else:
                parts.append(f"e.{name} = ?")
                params.append(value)
        return " AND ".join(parts) or "1", params


def _time_bound(value: str, *, end: bool) -> str:
    """A bound on the entries' ``at`` text (RFC 3339 UTC with microseconds, ``Z``).

    A date alone covers the whole day: ``until=2026-01-02`` includes that day.
    """
    from datetime import UTC, datetime, timedelta

    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if end:
        when += timedelta(days=1) if len(value) == 10 else timedelta(microseconds=1)
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def columns(data: bytes, country_of: Mapping[str, str]) -> tuple[dict[str, str], set[str]]:
    """The filter columns of entry bytes, and the rule and check codes it names.

    ``country_of`` maps agencies and nodes to their country (from the federation file); an
    undecodable entry gets kind ``undecodable`` and nothing else.
    """
    try:
        event = decode_event(data)
    except AuditError:
        return {c: "" for c in _COLUMNS} | {"kind": "undecodable"}, set()

    def get(name: str) -> str:
        return str(getattr(event, name, "") or "")

    node = get("target_node") or get("node")
    agency = get("agency")
    decision = get("decision")
    if event.kind == "disclosed":
        decision = "HIT" if getattr(event, "hit", False) else "NO_HIT"
    values = {
        "at": get("at"),
        "day": get("at")[:10],
        "kind": event.kind,
        "query_id": get("query_id"),
        "agency": agency,
        "country": country_of.get(agency) or country_of.get(node, ""),
        "investigator": get("investigator"),
        "order_id": get("order_id"),
        "decision": decision,
        "node": node,
    }
    rules = set(getattr(event, "rule_codes", ()) or ())
    for code, rule in getattr(event, "checks", ()) or ():
        rules |= {code, rule}
    if get("reason_code"):
        rules.add(get("reason_code"))
    return values, rules


def held_federation(path: Path) -> bytes | None:
    """The federation file version the mirror at ``path`` was last verified under (None: none yet)."""
    if not path.exists():
        return None
    db = sqlite3.connect(path, timeout=30)
    try:
        if (
            db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
            is None
        ):
            return None  # a new or empty file: opening it as a mirror makes it one, or says what is wrong
        row = db.execute("SELECT value FROM meta WHERE key = 'federation'").fetchone()
    except sqlite3.Error as exc:
        # Never "nothing kept": that would trust any file as on a first use.
        raise ConfigError(
            f"cannot read the federation version kept in the mirror {path}: {exc}",
            hint="check the file (another console may hold it locked), or give another --mirror",
        ) from None
    finally:
        db.close()
    return bytes(row[0]) if row is not None else None


class Mirror:
    """The SQLite file: staged and verified entries, and the verified head (``meta``)."""

    def __init__(
        self, path: Path, *, country_of: Mapping[str, str] | None = None, reader: str | None = None
    ) -> None:
        self.path = path
        self.country_of = dict(country_of or {})
        #: The country whose officers this mirror is for (None: the whole log, e.g. an operator's copy).
        self.reader = reader
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)
            self._claim(db, reader)

    def _claim(self, db: sqlite3.Connection, reader: str | None) -> None:
        """Bind a new mirror to its reader; refuse one made for another reader."""
        row = db.execute("SELECT value FROM meta WHERE key = 'reader'").fetchone()
        has_entries = db.execute("SELECT 1 FROM entries LIMIT 1").fetchone() is not None
        mine = (reader or "").encode()
        if row is None and not has_entries:
            db.execute("INSERT INTO meta (key, value) VALUES ('reader', ?)", (mine,))
            return
        theirs = bytes(row[0]) if row is not None else b""
        if theirs != mine:
            made = f"{theirs.decode()}'s legal officers" if theirs else "the whole log"
            wanted = f"{reader}'s legal officers" if reader else "the whole log"
            raise ConfigError(
                f"the mirror {self.path} was made for {made}, not for {wanted}",
                hint="give another --mirror file (each country's officers keep their own mirror)",
            )

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    # ------------------------------------------------------------------ what the verifier writes

    def head(self) -> VerifiedHead:
        """The verified head (size 0 in a new mirror)."""
        with self._connect() as db:
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('size', 'root', 'note')"))
        if "size" not in meta:
            return VerifiedHead()
        return VerifiedHead(int(meta["size"]), bytes(meta["root"]), bytes(meta["note"]))

    def keep_federation(self, data: bytes) -> None:
        """Remember the federation file version this mirror is verified under (its exact bytes)."""
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('federation', ?)", (data,))

    def discard_staged(self) -> None:
        """Delete rows at and above the verified size (a round that did not verify)."""
        size = self.head().size
        with self._connect() as db:
            db.execute("DELETE FROM entries WHERE idx >= ?", (size,))
            db.execute("DELETE FROM entry_data WHERE idx >= ?", (size,))
            db.execute("DELETE FROM entry_rules WHERE idx >= ?", (size,))
            db.execute("DELETE FROM withheld WHERE idx >= ?", (size,))

    def stage(self, start: int, entries: Iterable[bytes | Withheld]) -> None:
        """Write entries (bytes, or withheld leaf hashes) from index ``start`` (not shown until promoted)."""
        rows, rules, blobs, leaves = [], [], [], []
        for offset, item in enumerate(entries):
            codes: set[str] = set()
            if isinstance(item, Withheld):
                values, data = withheld_columns(), b""
                leaves.append((start + offset, item.leaf_hash))
            else:
                data = item
                values, codes = columns(data, self.country_of)
            rows.append((start + offset, *(values[c] for c in _COLUMNS)))
            blobs.append((start + offset, data))
            rules += [(code, start + offset) for code in codes]
        marks = ", ".join("?" * (len(_COLUMNS) + 1))
        with self._connect() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO entries (idx, {_COLS}) VALUES ({marks})",  # noqa: S608
                rows,
            )
            db.executemany("INSERT OR REPLACE INTO entry_data (idx, data) VALUES (?, ?)", blobs)
            db.executemany("INSERT OR IGNORE INTO entry_rules (rule, idx) VALUES (?, ?)", rules)
            db.executemany("INSERT OR REPLACE INTO withheld (idx, leaf) VALUES (?, ?)", leaves)

    def promote(self, head: VerifiedHead) -> None:
        """Mark the entries below ``head.size`` verified, under that checkpoint."""
        with self._connect() as db:
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("size", str(head.size).encode()), ("root", head.root), ("note", head.note)],
            )

    def iter_stored(
        self, end: int, *, chunk: int = 5000
    ) -> Iterator[tuple[int, dict[str, str], bytes | Withheld, set[str]]]:
        """Every row below ``end`` as stored: index, columns, bytes (or the withheld leaf hash) and
        rule codes (for the mirror check)."""
        start = 0
        with self._connect() as db:
            while start < end:
                rows = db.execute(
                    f"SELECT e.idx, {_E_COLS}, w.leaf, d.data FROM entries e"  # noqa: S608
                    " JOIN entry_data d ON d.idx = e.idx LEFT JOIN withheld w ON w.idx = e.idx"
                    " WHERE e.idx >= ? AND e.idx < ? ORDER BY e.idx",
                    (start, min(end, start + chunk)),
                ).fetchall()
                rules: dict[int, set[str]] = {}
                for code, idx in db.execute(
                    "SELECT rule, idx FROM entry_rules WHERE idx >= ? AND idx < ?",
                    (start, min(end, start + chunk)),
                ):
                    rules.setdefault(int(idx), set()).add(str(code))
                if not rows:
                    return
                for row in rows:
                    yield (
                        int(row[0]),
                        dict(zip(_COLUMNS, row[1:-2], strict=True)),
                        bytes(row[-1]) if row[-2] is None else Withheld(bytes(row[-2])),
                        rules.get(int(row[0]), set()),
                    )
                start = int(rows[-1][0]) + 1

    # ------------------------------------------------------------------ what the pages read

    def withheld_count(self) -> int:
        """How many verified entries are withheld from this mirror's country."""
        with self._connect() as db:
            return int(
                db.execute("SELECT count(*) FROM withheld WHERE idx < ?", (self._verified(db),)).fetchone()[0]
            )

    def page(
        self, filters: Filters, *, before: int | None = None, after: int | None = None, size: int = 50
    ) -> Page:
        """One page of verified entries matching ``filters``, newest first, by keyset.

        ``before``: the entries older than that index (the next page); ``after``: the entries
        newer than it (the previous page); neither: the newest.
        """
        where, params = filters.where()
        with self._connect() as db:
            verified = self._verified(db)
            base = f"FROM entries e WHERE e.idx < ? AND {where}"
            args: list[object] = [verified, *params]
            total = int(db.execute(f"SELECT count(*) {base}", args).fetchone()[0])
            if after is not None:
                found = db.execute(
                    f"SELECT {_WITH_DATA} {base} AND e.idx > ? ORDER BY e.idx ASC LIMIT ?",
                    [*args, after, size],
                ).fetchall()
                found.reverse()
            else:
                cursor = verified if before is None else before
                found = db.execute(
                    f"SELECT {_WITH_DATA} {base} AND e.idx < ? ORDER BY e.idx DESC LIMIT ?",
                    [*args, cursor, size],
                ).fetchall()
            rows = tuple(_row(r) for r in found)
            newer = (
                int(db.execute(f"SELECT count(*) {base} AND e.idx > ?", [*args, rows[0].idx]).fetchone()[0])
                if rows
                else 0
            )
        pages = max(1, -(-total // size))
        return Page(
            rows=rows,
            total=total,
            number=min(pages, newer // size + 1),
            pages=pages,
            newer=rows[0].idx if rows and newer > 0 else None,
            older=rows[-1].idx if rows and newer + len(rows) < total else None,
        )

    def entry(self, idx: int) -> EntryRow | None:
        """One verified entry."""
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_WITH_DATA} FROM entries e WHERE e.idx = ? AND e.idx < ?",  # noqa: S608
                (idx, self._verified(db)),
            ).fetchone()
        return None if row is None else _row(row)

    def query_entries(self, query_id: str) -> list[EntryRow]:
        """Every verified entry of one query, in log order."""
        return self._where("query_id = ?", query_id)

    def order_entries(self, order_id: str) -> list[EntryRow]:
        """Every verified entry that names one legal order (decisions, emergency, validation)."""
        return self._where("order_id = ?", order_id)

    def _where(self, condition: str, value: str, limit: int = 5000) -> list[EntryRow]:
        with self._connect() as db:
            found = db.execute(
                f"SELECT {_WITH_DATA} FROM entries e"  # noqa: S608
                f" WHERE e.{condition} AND e.idx < ? ORDER BY e.idx LIMIT ?",
                (value, self._verified(db), limit),
            ).fetchall()
        return [_row(r) for r in found]

    def counts(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Aggregate rows over the verified entries (``sql`` selects from ``v``, the verified view)."""
        with self._connect() as db:
            verified = self._verified(db)
            query = f"WITH v AS (SELECT * FROM entries WHERE idx < {verified}) {sql}"  # noqa: S608
            return [tuple(r) for r in db.execute(query, params)]

    @staticmethod
    def _verified(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = 'size'").fetchone()
        return int(row[0]) if row else 0


def _row(row: tuple[Any, ...]) -> EntryRow:
    data = bytes(row[-1])
    try:
        event: Event | None = decode_event(data)
    except AuditError:
        event = None
    idx, _at, _day, *rest = row[:-1]
    values = dict(zip(_COLUMNS[2:], rest, strict=True))
    return EntryRow(idx=int(idx), at=str(row[1]), data=data, event=event, **values)
