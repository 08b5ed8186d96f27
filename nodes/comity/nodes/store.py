"""The node's record store: SQLite by default, PostgreSQL for a ``postgresql://`` URL.

One code path (SQLAlchemy Core) and two tables:

- ``<prefix>records``: one row per record (id, dataset, type, category, time, fields as JSON);
- ``<prefix>selectors``: one row per (selector type, normalised value, record id), whose
  primary key is the index every lookup goes through, so a lookup costs O(matching records).

Values are always bound parameters; nothing a caller supplies becomes SQL text. Selector
values must already be normalised (:mod:`comity.core.selectors`): the store compares exactly.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from psycopg import sql as psycopg_sql
from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
    union_all,
)

from comity.nodes._sql import Backend, check_identifier, db_errors, make_engine
from comity.nodes._tables import Shape, tables
from comity.nodes.errors import InvalidRecord, StoreNotReady
from comity.nodes.lookup import (
    CategoryCount,
    CheckReport,
    RecordStream,
    TimeRange,
    check_selector_count,
    from_micros,
    to_micros,
)
from comity.nodes.schema import DataCategory, Record, Schema, Selector, default_schema

__all__ = ["RecordStore", "RecordWriter"]

_CHUNK = 500  # ids per DELETE ... IN (...), well under every backend's bound-parameter limit


class RecordStore:
    """Records of one or more datasets, looked up by exact selectors.

    ``url`` is a file path, ``sqlite:///PATH``, ``sqlite://`` (in memory) or
    ``postgresql://USER@HOST/DB``. ``table_prefix`` lets several stores share one database.
    With ``create=True`` (the default) missing tables and indexes are created. Raises
    StoreUnavailable when the database cannot be reached.
    """

    def __init__(
        self,
        url: str | Path,
        *,
        schema: Schema | None = None,
        table_prefix: str = "comity_",
        create: bool = True,
        fetch_size: int = 500,
    ) -> None:
        self.schema = schema or default_schema()
        self.prefix = check_identifier(table_prefix, "table_prefix")
        self._backend: Backend = make_engine(url)
        self._metadata, self._records, self._selectors = tables(self.prefix)
        self._fetch_size = fetch_size
        self._statements: dict[Shape, Select[Any]] = {}
        if create:
            try:
                self.create()
            except BaseException:
                self.close()
                raise

    @property
    def backend(self) -> str:
        """The backend's name: sqlite or postgresql."""
        return self._backend.name

    @property
    def location(self) -> str:
        """Where the store is, without any password."""
        return self._backend.location

    def create(self) -> None:
        """Create the tables and indexes that are missing (idempotent)."""
        with db_errors(self.location):
            self._metadata.create_all(self._backend.engine, checkfirst=True)

    def drop(self) -> None:
        """Drop this store's tables and everything in them."""
        with db_errors(self.location):
            self._metadata.drop_all(self._backend.engine, checkfirst=True)

    def analyze(self) -> None:
        """Refresh the query planner's statistics of the store's tables (worth it after a large load)."""
        with db_errors(self.location), self._backend.engine.begin() as conn:
            for t in (self._records, self._selectors):
                conn.execute(text(f"ANALYZE {conn.dialect.identifier_preparer.quote(t.name)}"))

    def close(self) -> None:
        """Close every pooled connection."""
        self._backend.engine.dispose()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- writing

    @contextmanager
    def writer(self) -> Iterator[RecordWriter]:
        """A writer whose puts all commit together when the block ends, or not at all."""
        with db_errors(self.location), self._backend.engine.begin() as conn:
            yield RecordWriter(conn, self)

    def put(self, records: Iterable[Record]) -> int:
        """Insert or replace ``records`` in one transaction; returns how many replaced existing ones."""
        with self.writer() as w:
            return w.put(records)

    # ----------------------------------------------------------------- reading

    def _statement(self, shape: Shape) -> Select[Any]:
        """The lookup (or hit check) statement for one shape of query, built once and reused.

        Values are bind parameters (``t0``/``v0``... per selector, ``cats``, ``start``,
        ``end``, ``lim``), so a repeated query pays neither construction nor compilation.
        """
        cached = self._statements.get(shape)
        if cached is not None:
            return cached
        r, s = self._records, self._selectors
        parts = [
            select(s.c.record_id).where(
                s.c.selector_type == bindparam(f"t{i}"), s.c.value == bindparam(f"v{i}")
            )
            for i in range(shape.selectors)
        ]
        ids = parts[0] if len(parts) == 1 else union_all(*parts)
        conditions: list[ColumnElement[bool]] = [r.c.record_id.in_(ids)]
        if shape.categories:
            conditions.append(r.c.category.in_(bindparam("cats", expanding=True)))
        if shape.start:
            conditions.append(r.c.observed_at >= bindparam("start"))
        if shape.end:
            conditions.append(r.c.observed_at <= bindparam("end"))
        if shape.hit_check:
            stmt = select(r.c.record_id).where(and_(*conditions)).limit(1)
        else:
            stmt = select(*r.c).where(and_(*conditions)).order_by(r.c.observed_at, r.c.record_id)
            if shape.limit:
                stmt = stmt.limit(bindparam("lim", type_=Integer))
        self._statements[shape] = stmt
        return stmt

    def _prepare(
        self,
        selectors: Sequence[Selector],
        categories: Collection[DataCategory] | None,
        time_range: TimeRange | None,
        limit: int | None,
        *,
        hit_check: bool,
    ) -> tuple[Select[Any], dict[str, Any]]:
        start = time_range.start if time_range is not None else None
        end = time_range.end if time_range is not None else None
        shape = Shape(
            len(selectors),
            categories is not None,
            start is not None,
            end is not None,
            limit is not None,
            hit_check,
        )
        params: dict[str, Any] = {}
        for i, sel in enumerate(selectors):
            params[f"t{i}"], params[f"v{i}"] = int(sel.type), sel.value
        if categories is not None:
            params["cats"] = sorted(int(c) for c in categories)
        if start is not None:
            params["start"] = to_micros(start)
        if end is not None:
            params["end"] = to_micros(end)
        if limit is not None:
            params["lim"] = limit + 1  # one more tells the caller the answer was truncated
        return self._statement(shape), params

    def lookup(
        self,
        selectors: Sequence[Selector],
        *,
        categories: Collection[DataCategory] | None = None,
        time_range: TimeRange | None = None,
        limit: int | None = None,
    ) -> RecordStream:
        """Records matching any of ``selectors``, in the given categories and time range,
        ordered by (observed_at, record_id), at most ``limit`` of them.

        Rows are fetched ``fetch_size`` at a time (a server-side cursor on PostgreSQL), so memory
        stays bounded however many match. No selectors, or no categories, match nothing.
        """
        check_selector_count(selectors)
        if not selectors or (categories is not None and not categories) or limit == 0:
            return RecordStream(iter(()), limit, lambda: None)
        stmt, params = self._prepare(selectors, categories, time_range, limit, hit_check=False)
        with db_errors(self.location):
            conn = self._backend.engine.connect()
            try:
                result = conn.execution_options(yield_per=self._fetch_size).execute(stmt, params)
            except BaseException:
                conn.close()
                raise

        def rows() -> Iterator[Record]:
            with db_errors(self.location):
                for row in result:
                    yield self._record(row)

        def release() -> None:
            result.close()
            conn.close()

        return RecordStream(rows(), limit, release)

    def hit_check(
        self,
        selectors: Sequence[Selector],
        *,
        categories: Collection[DataCategory] | None = None,
        time_range: TimeRange | None = None,
    ) -> bool:
        """Whether any record matches; reads no record's fields."""
        check_selector_count(selectors)
        if not selectors or (categories is not None and not categories):
            return False
        stmt, params = self._prepare(selectors, categories, time_range, None, hit_check=True)
        with db_errors(self.location), self._backend.engine.connect() as conn:
            return conn.execute(stmt, params).first() is not None

    def selector_entries(self) -> Iterator[tuple[Record, list[tuple[int, str]]]]:
        """Every record with its (selector type, value) pairs, in record id order, streamed.

        What the node's private hit check filters are built from (a full pass over the store).
        """
        stmt = select(*self._records.c).order_by(self._records.c.record_id)
        with db_errors(self.location), self._backend.engine.connect() as conn:
            for row in conn.execution_options(yield_per=self._fetch_size).execute(stmt):
                record = self._record(row)
                rt = self.schema.get(record.record_type)
                pairs = sorted(
                    {
                        (int(spec.selector), record.fields[spec.name])
                        for spec in (rt.selector_fields if rt is not None else ())
                        if spec.selector is not None and record.fields.get(spec.name)
                    }
                )
                yield record, pairs

    def get(self, record_id: str) -> Record | None:
        """The record with this id, or None."""
        stmt = select(*self._records.c).where(self._records.c.record_id == record_id)
        with db_errors(self.location), self._backend.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else self._record(row)

    def _record(self, row: Row[Any]) -> Record:
        return Record(
            record_id=row.record_id,
            record_type=row.record_type,
            category=DataCategory(row.category),
            observed_at=from_micros(row.observed_at),
            fields=json.loads(row.fields),
            dataset=row.dataset,
        )

    # ----------------------------------------------------------------- operations

    def stats(self) -> list[CategoryCount]:
        """Record counts per dataset, category and record type."""
        r = self._records
        stmt = (
            select(r.c.dataset, r.c.category, r.c.record_type, func.count())
            .group_by(r.c.dataset, r.c.category, r.c.record_type)
            .order_by(r.c.dataset, r.c.category, r.c.record_type)
        )
        with db_errors(self.location), self._backend.engine.connect() as conn:
            return [CategoryCount(d, DataCategory(c), t, n) for d, c, t, n in conn.execute(stmt)]

    def missing_tables(self) -> list[str]:
        """The store's tables the database does not have yet (all of them in a new database)."""
        with db_errors(self.location), self._backend.engine.connect() as conn:
            insp = inspect(conn)
            return [t.name for t in (self._records, self._selectors) if not insp.has_table(t.name)]

    def is_new(self) -> bool:
        """Whether the database holds none of the store's tables yet (a node never started)."""
        return len(self.missing_tables()) == len((self._records, self._selectors))

    def check(self) -> CheckReport:
        """Verify the store is reachable and its tables and indexes exist.

        Raises StoreUnavailable when unreachable and StoreNotReady naming what is missing.
        """
        tables = (self._records, self._selectors)
        missing = self.missing_tables()
        if missing:
            raise StoreNotReady(
                f"record store at {self.location} lacks table(s) {', '.join(missing)}",
                hint=_CREATED_BY,
            )
        with db_errors(self.location), self._backend.engine.connect() as conn:
            insp = inspect(conn)
            present = {ix["name"] for t in tables for ix in insp.get_indexes(t.name)}
            wanted = sorted(ix.name for t in tables for ix in t.indexes if ix.name)
            absent = [name for name in wanted if name not in present]
            if absent:
                raise StoreNotReady(
                    f"record store at {self.location} lacks index(es) {', '.join(absent)}",
                    hint=_CREATED_BY,
                )
            count = conn.execute(select(func.count()).select_from(self._records)).scalar_one()
        return CheckReport(
            backend=self.backend,
            location=self.location,
            tables=tuple(t.name for t in tables),
            indexes=tuple(wanted),
            records=int(count),
        )


_CREATED_BY = "the node makes them when it starts (comity node serve) or loads records (comity node load)"


def _fields_json(fields: Any) -> str:
    return json.dumps(dict(fields), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class RecordWriter:
    """Puts records inside one transaction (see :meth:`RecordStore.writer`)."""

    def __init__(self, conn: Connection, store: RecordStore) -> None:
        self._conn = conn
        self._store = store

    def _selector_rows(self, record: Record) -> list[dict[str, Any]]:
        rt = self._store.schema.get(record.record_type)
        if rt is None:
            raise InvalidRecord(
                f"record type {record.record_type!r} is not in the schema", field="record_type"
            )
        seen: set[tuple[int, str]] = set()
        for spec in rt.selector_fields:
            value = record.fields.get(spec.name)
            if value and spec.selector is not None:
                seen.add((int(spec.selector), value))
        return [{"selector_type": t, "value": v, "record_id": record.record_id} for t, v in sorted(seen)]

    def _insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._conn.dialect.name != "postgresql":
            self._conn.execute(insert(table), rows)
            return
        # PostgreSQL: COPY, in the same transaction. psycopg's executemany sends one statement
        # per row, which made bulk loads several times slower than SQLite's.
        names = [c.name for c in table.columns]
        copy = psycopg_sql.SQL("COPY {} ({}) FROM STDIN").format(
            psycopg_sql.Identifier(table.name), psycopg_sql.SQL(", ").join(map(psycopg_sql.Identifier, names))
        )
        cursor = self._conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor, cursor.copy(copy) as pipe:
            for row in rows:
                pipe.write_row([row[n] for n in names])

    def put(self, records: Iterable[Record]) -> int:
        """Insert or replace ``records`` (same id → replaced); returns how many were replaced."""
        store, replaced = self._store, 0
        batch = list(records)
        for start in range(0, len(batch), _CHUNK):
            chunk = batch[start : start + _CHUNK]
            ids = [r.record_id for r in chunk]
            if len(set(ids)) != len(ids):
                # The last occurrence wins, as if the records were put one by one.
                chunk = list({r.record_id: r for r in chunk}.values())
                ids = [r.record_id for r in chunk]
            self._conn.execute(delete(store._selectors).where(store._selectors.c.record_id.in_(ids)))
            replaced += self._conn.execute(
                delete(store._records).where(store._records.c.record_id.in_(ids))
            ).rowcount
            record_rows = [
                {
                    "record_id": r.record_id,
                    "dataset": r.dataset,
                    "record_type": r.record_type,
                    "category": int(r.category),
                    "observed_at": to_micros(r.observed_at),
                    "fields": _fields_json(r.fields),
                }
                for r in chunk
            ]
            self._insert(store._records, record_rows)
            self._insert(store._selectors, [row for r in chunk for row in self._selector_rows(r)])
        return replaced
