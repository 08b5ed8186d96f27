"""Serving an agency's own PostgreSQL tables or views, through a column mapping, without copying.

Each :class:`TableMapping` says which table or view holds records of which record type of the
schema, which column is the record id and which the time, which column holds each field, and
which columns are selectors of which type. :class:`MappedSource` answers the same lookups as
:class:`~comity.nodes.store.RecordStore` (:class:`~comity.nodes.lookup.RecordSource`).

Selector values arrive normalised (:mod:`comity.core.selectors`) and are compared exactly,
or after ``lower()`` / ``upper()`` of the column when the mapping asks for it. Where the
agency's column holds another form (phone numbers with punctuation, say), map a view that
computes the canonical form. Each selector column should be indexed (``check()`` says which
are not), or lookups scan the table. Identifiers from the mapping are quoted by SQLAlchemy and
checked against a strict pattern; values are always bound parameters.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import String, Text, cast, column, func, inspect, literal, null, or_, select, table, union_all
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.exc import NoSuchTableError
from sqlalchemy.sql import ColumnElement, Select, TableClause

from comity.core.errors import ConfigError
from comity.nodes._sql import Backend, db_errors, make_engine
from comity.nodes.errors import StoreNotReady
from comity.nodes.lookup import CategoryCount, CheckReport, RecordStream, TimeRange, check_selector_count
from comity.nodes.schema import DataCategory, FieldType, Record, RecordType, Schema, Selector, SelectorType

__all__ = ["MappedSource", "SelectorColumn", "TableMapping"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_ISO_UTC = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
_TIMESTAMPTZ = TIMESTAMP(timezone=True)


@dataclass(frozen=True, slots=True)
class SelectorColumn:
    """A column that is a selector of ``type``; ``compare`` folds the column's case first."""

    column: str
    type: SelectorType
    compare: Literal["exact", "lower", "upper"] = "exact"


@dataclass(frozen=True)
class TableMapping:
    """How one table or view (``table`` or ``schema.table``) maps onto a record type.

    ``fields`` maps schema field names to columns. ``selectors`` defaults to the mapped fields
    the record type declares as selectors. ``id_prefix`` keeps record ids of several tables apart.
    """

    table: str
    record_type: str
    record_id: str
    observed_at: str
    fields: Mapping[str, str]
    selectors: tuple[SelectorColumn, ...] | None = None
    dataset: str = "mapped"
    id_prefix: str = ""

    def __post_init__(self) -> None:
        for part in self.table.split(".", 1):
            _check_name(part, "table")
        _check_name(self.record_id, "record_id")
        _check_name(self.observed_at, "observed_at")
        for name, col in self.fields.items():
            _check_name(col, f"fields.{name}")
        for sel in self.selectors or ():
            _check_name(sel.column, "selectors")

    @classmethod
    def from_dict(cls, data: Mapping[str, object], *, where: str = "mapping") -> TableMapping:
        """A mapping from configuration data, e.g. one ``[[store.tables]]`` TOML table::

            table = "agency.subscribers"      # a table or view, optionally schema-qualified
            record_type = "subscriber_account"
            record_id = "id"
            observed_at = "opened"
            dataset = "agency"                # optional
            id_prefix = "sub-"                # optional
            fields = { email = "mail", full_name = "holder" }
            selectors = [{ column = "mail", type = "EMAIL", compare = "exact" }]  # optional

        Raises ConfigError naming the bad field (``where`` prefixes the names).
        """
        unknown = sorted(set(data) - _MAPPING_KEYS)
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(unknown)}", field=where)
        text = {
            k: _config_str(data, k, where, required=k in _REQUIRED_KEYS) for k in _MAPPING_KEYS - _NESTED_KEYS
        }
        fields = data.get("fields", {})
        if not isinstance(fields, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
        ):
            raise ConfigError("must be a table of field name = column name", field=f"{where}.fields")
        selectors = data.get("selectors")
        return cls(
            table=text["table"],
            record_type=text["record_type"],
            record_id=text["record_id"],
            observed_at=text["observed_at"],
            fields=dict(fields),
            selectors=None if selectors is None else _selector_columns(selectors, f"{where}.selectors"),
            dataset=text["dataset"] or "mapped",
            id_prefix=text["id_prefix"],
        )


_REQUIRED_KEYS = frozenset({"table", "record_type", "record_id", "observed_at"})
_NESTED_KEYS = frozenset({"fields", "selectors"})
_MAPPING_KEYS = _REQUIRED_KEYS | _NESTED_KEYS | {"dataset", "id_prefix"}


def _config_str(data: Mapping[str, object], key: str, where: str, *, required: bool) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise ConfigError("must be a non-empty string", field=f"{where}.{key}")
    return value


def _selector_columns(data: object, where: str) -> tuple[SelectorColumn, ...]:
    if not isinstance(data, list):
        raise ConfigError("must be a list of { column, type, compare }", field=where)
    out = []
    for i, item in enumerate(data):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping) or set(item) - {"column", "type", "compare"}:
            raise ConfigError("must be a table with column, type and optionally compare", field=at)
        column_name = _config_str(item, "column", at, required=True)
        kind = _config_str(item, "type", at, required=True)
        compare = item.get("compare", "exact")
        if kind not in SelectorType.__members__:
            raise ConfigError(
                f"unknown selector type; one of {', '.join(SelectorType.__members__)}", field=f"{at}.type"
            )
        if compare not in ("exact", "lower", "upper"):
            raise ConfigError("must be exact, lower or upper", field=f"{at}.compare")
        out.append(SelectorColumn(column_name, SelectorType[kind], compare))
    return tuple(out)


def _check_name(name: str, what: str) -> None:
    if not _NAME.fullmatch(name):
        raise ConfigError("must be a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*)", field=f"mapping.{what}")


@dataclass
class _Bound:
    """A mapping checked against the schema, with its SQL objects."""

    mapping: TableMapping
    record_type: RecordType
    table: TableClause
    field_names: list[str]
    selectors: list[SelectorColumn] = field(default_factory=list)

    @property
    def category(self) -> DataCategory:
        return self.record_type.category


def _bind(mapping: TableMapping, schema: Schema) -> _Bound:
    rt = schema.get(mapping.record_type)
    if rt is None:
        raise ConfigError(
            f"record type {mapping.record_type!r} is not in the schema", field="mapping.record_type"
        )
    for name in mapping.fields:
        if rt.field(name) is None:
            raise ConfigError(f"{name!r} is not a field of {rt.name}", field="mapping.fields")
    schema_name, _, table_name = mapping.table.rpartition(".")
    columns = {mapping.record_id, mapping.observed_at, *mapping.fields.values()}
    selectors = list(mapping.selectors or ())
    if mapping.selectors is None:
        for name, col in mapping.fields.items():
            spec = rt.field(name)
            if spec is not None and spec.selector is not None:
                selectors.append(SelectorColumn(col, spec.selector))
    columns |= {s.column for s in selectors}
    t = table(table_name, *(column(c) for c in sorted(columns)), schema=schema_name or None)
    return _Bound(mapping, rt, t, list(mapping.fields), selectors)


class MappedSource:
    """Records served from existing PostgreSQL tables or views through column mappings."""

    def __init__(
        self, url: str, mappings: Sequence[TableMapping], *, schema: Schema, fetch_size: int = 500
    ) -> None:
        if not mappings:
            raise ConfigError("at least one table mapping is needed", field="mappings")
        self.schema = schema
        self._bound = [_bind(m, schema) for m in mappings]
        self._width = max(len(b.field_names) for b in self._bound)
        self._backend: Backend = make_engine(url)
        if self._backend.name != "postgresql":
            raise ConfigError("mapped tables are served from PostgreSQL only", field="store.url")
        self._fetch_size = fetch_size

    @property
    def location(self) -> str:
        """Where the tables are, without any password."""
        return self._backend.location

    def close(self) -> None:
        """Close every pooled connection."""
        self._backend.engine.dispose()

    # ----------------------------------------------------------------- SQL

    def _where(
        self,
        b: _Bound,
        selectors: Sequence[Selector],
        time_range: TimeRange | None,
    ) -> list[ColumnElement[bool]] | None:
        matches: list[ColumnElement[bool]] = []
        for sel in selectors:
            for sc in b.selectors:
                if sc.type is sel.type:
                    col: ColumnElement[Any] = b.table.c[sc.column]
                    if sc.compare != "exact":
                        col = func.lower(col) if sc.compare == "lower" else func.upper(col)
                    matches.append(col == sel.value)
        if not matches:
            return None
        conditions: list[ColumnElement[bool]] = [or_(*matches)]
        ts = b.table.c[b.mapping.observed_at]
        if time_range is not None and time_range.start is not None:
            conditions.append(ts >= time_range.start)
        if time_range is not None and time_range.end is not None:
            conditions.append(ts <= time_range.end)
        return conditions

    def _field_expr(self, b: _Bound, name: str) -> ColumnElement[Any]:
        col = b.table.c[b.mapping.fields[name]]
        spec = b.record_type.field(name)
        if spec is not None and spec.type is FieldType.TIMESTAMP:
            # The session runs in UTC (see make_engine), so this renders the UTC instant.
            return func.to_char(cast(col, _TIMESTAMPTZ), _ISO_UTC)
        if spec is not None and spec.type is FieldType.DATE:
            return func.to_char(col, "YYYY-MM-DD")
        return cast(col, Text)

    def _select(self, b: _Bound, conditions: list[ColumnElement[bool]]) -> Select[Any]:
        fields = [self._field_expr(b, name) for name in b.field_names]
        fields += [null()] * (self._width - len(fields))
        return select(
            (literal(b.mapping.id_prefix) + cast(b.table.c[b.mapping.record_id], Text)).label("record_id"),
            literal(b.mapping.record_type).label("record_type"),
            literal(b.mapping.dataset).label("dataset"),
            literal(int(b.category)).label("category"),
            cast(b.table.c[b.mapping.observed_at], _TIMESTAMPTZ).label("observed_at"),
            *(f.label(f"f{i}") for i, f in enumerate(fields)),
        ).where(*conditions)

    def _union(
        self,
        selectors: Sequence[Selector],
        categories: Collection[DataCategory] | None,
        time_range: TimeRange | None,
    ) -> tuple[Any, list[_Bound]] | None:
        check_selector_count(selectors)
        parts, used = [], []
        for b in self._bound:
            if categories is not None and b.category not in categories:
                continue
            conditions = self._where(b, selectors, time_range)
            if conditions is not None:
                parts.append(self._select(b, conditions))
                used.append(b)
        if not parts:
            return None
        return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("matched"), used

    # ----------------------------------------------------------------- RecordSource

    def lookup(
        self,
        selectors: Sequence[Selector],
        *,
        categories: Collection[DataCategory] | None = None,
        time_range: TimeRange | None = None,
        limit: int | None = None,
    ) -> RecordStream:
        """As :meth:`RecordStore.lookup`, over the mapped tables."""
        built = self._union(selectors, categories, time_range) if limit != 0 else None
        if built is None:
            return RecordStream(iter(()), limit, lambda: None)
        matched, _ = built
        stmt = select(matched).order_by(matched.c.observed_at, matched.c.record_id)
        if limit is not None:
            stmt = stmt.limit(limit + 1)
        fields_of = {b.mapping.record_type: b.field_names for b in self._bound}
        # A NULL in a mapped country column is "not known"; a country field the mapping does
        # not map at all stays absent, and the node refuses rather than guess (subjects.py).
        countries = {b.mapping.record_type: b.record_type.subject_country_fields for b in self._bound}
        with db_errors(self.location):
            conn = self._backend.engine.connect()
            try:
                result = conn.execution_options(yield_per=self._fetch_size).execute(stmt)
            except BaseException:
                conn.close()
                raise

        def rows() -> Iterator[Record]:
            with db_errors(self.location):
                for row in result:
                    names = fields_of[row.record_type]
                    values = row[5 : 5 + len(names)]
                    yield Record(
                        record_id=row.record_id,
                        record_type=row.record_type,
                        category=DataCategory(row.category),
                        observed_at=_utc(row.observed_at),
                        fields={
                            n: "" if v is None else v
                            for n, v in zip(names, values, strict=True)
                            if v is not None or n in countries[row.record_type]
                        },
                        dataset=row.dataset,
                    )

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
        """Whether any mapped row matches."""
        built = self._union(selectors, categories, time_range)
        if built is None:
            return False
        stmt = select(built[0].c.record_id).limit(1)
        with db_errors(self.location), self._backend.engine.connect() as conn:
            return conn.execute(stmt).first() is not None

    def stats(self) -> list[CategoryCount]:
        """Row counts per mapping (a full count of each table)."""
        out = []
        with db_errors(self.location), self._backend.engine.connect() as conn:
            for b in self._bound:
                n = conn.execute(select(func.count()).select_from(b.table)).scalar_one()
                out.append(CategoryCount(b.mapping.dataset, b.category, b.mapping.record_type, int(n)))
        return out

    def check(self) -> CheckReport:
        """Verify every mapped table or view and column exists and every selector column of a
        table is the first column of some index; raises StoreUnavailable or StoreNotReady."""
        problems: list[str] = []
        indexes: list[str] = []
        records = 0
        with db_errors(self.location), self._backend.engine.connect() as conn:
            insp = inspect(conn)
            for b in self._bound:
                problems += self._check_one(b, insp, indexes)
            if not problems:
                records = sum(c.records for c in self.stats())
        if problems:
            raise StoreNotReady(
                f"mapped source at {self.location}: " + "; ".join(problems),
                hint="fix the column mapping, or create the missing tables or indexes",
            )
        tables = tuple(b.mapping.table for b in self._bound)
        return CheckReport("postgresql", self.location, tables, tuple(indexes), records)

    def _check_one(self, b: _Bound, insp: Any, indexes: list[str]) -> list[str]:
        schema_name = b.table.schema
        try:
            present = {c["name"]: c["type"] for c in insp.get_columns(b.table.name, schema=schema_name)}
        except NoSuchTableError:
            return [f"{b.mapping.table} does not exist"]
        missing = sorted(c.name for c in b.table.c if c.name not in present)
        if missing:
            return [f"{b.mapping.table} lacks column(s) {', '.join(missing)}"]
        # Selector values are bound as text; PostgreSQL will not compare text with inet or integer.
        untyped = [
            f"{b.mapping.table}.{sc.column} is {present[sc.column]}, not text (map a view that casts it)"
            for sc in b.selectors
            if not isinstance(present[sc.column], String)
        ]
        if untyped:
            return untyped
        if b.table.name in insp.get_view_names(schema=schema_name):
            return []  # a view has no indexes of its own; its tables' indexes serve it
        leading = {}
        for ix in insp.get_indexes(b.table.name, schema=schema_name):
            if ix["column_names"] and ix["column_names"][0]:
                leading[ix["column_names"][0]] = ix["name"]
        for pk_col in (insp.get_pk_constraint(b.table.name, schema=schema_name) or {}).get(
            "constrained_columns", []
        )[:1]:
            leading.setdefault(pk_col, f"{b.table.name}_pkey")
        problems = []
        for sc in b.selectors:
            if sc.compare == "exact" and sc.column not in leading:
                problems.append(f"{b.mapping.table}.{sc.column} has no index")
            elif sc.column in leading:
                indexes.append(str(leading[sc.column]))
        return problems


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
