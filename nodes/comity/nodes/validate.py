"""Checking one input record against the schema and bringing it to its stored form.

The input is a mapping as read from a JSON Lines row (see :mod:`comity.nodes.synthetic` for the
format) or a CSV row: ``record_id``, ``record_type``, optionally ``observed_at`` and
``category``, and ``fields``. Every field must be declared by the record type and match its
type; selector fields are normalised (:func:`comity.core.selectors.normalise`); timestamps
are rewritten in UTC (``2025-04-02T17:03:11Z``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime

from comity.core.selectors import InvalidSelector, normalise
from comity.nodes.errors import InvalidRecord
from comity.nodes.schema import DataCategory, FieldSpec, FieldType, Record, RecordType, Schema

__all__ = ["MAX_FIELD_LENGTH", "parse_record", "parse_timestamp"]

#: Longest accepted value per field type, in characters.
MAX_FIELD_LENGTH: dict[FieldType, int] = {
    FieldType.STRING: 1024,
    FieldType.TEXT: 65536,
    FieldType.INTEGER: 20,
    FieldType.TIMESTAMP: 40,
    FieldType.DATE: 10,
    FieldType.COUNTRY: 2,
}
_RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_COUNTRY = re.compile(r"[A-Z]{2}")
# Unicode category Cc; free text may keep tabs and line breaks.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TOP_LEVEL = frozenset({"record_id", "record_type", "observed_at", "category", "fields"})


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp with a UTC offset (``Z`` accepted), as an aware UTC datetime."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRecord("not an ISO 8601 timestamp", hint="e.g. 2025-04-02T17:03:11Z") from None
    if t.tzinfo is None:
        raise InvalidRecord("timestamp has no UTC offset", hint="append Z for UTC")
    return t.astimezone(UTC)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds" if t.microsecond else "seconds").replace("+00:00", "Z")


def _text(value: object, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRecord("value must be a string or an integer", field=name)
    return str(value)


def _value(spec: FieldSpec, raw: object, region: str) -> str:
    name = f"fields.{spec.name}"
    value = _text(raw, name)
    if len(value) > MAX_FIELD_LENGTH[spec.type]:
        raise InvalidRecord(f"longer than {MAX_FIELD_LENGTH[spec.type]} characters", field=name)
    controls = _TEXT_CONTROLS if spec.type is FieldType.TEXT else _CONTROLS
    if controls.search(value):
        raise InvalidRecord("contains control characters", field=name)
    if spec.selector is not None:
        try:
            return normalise(spec.selector, value, region=region)
        except InvalidSelector as exc:
            raise InvalidRecord(exc.message, field=name) from None
    match spec.type:
        case FieldType.INTEGER if not _INTEGER.fullmatch(value):
            raise InvalidRecord("not an integer", field=name)
        case FieldType.COUNTRY if not _COUNTRY.fullmatch(value):
            raise InvalidRecord("not an ISO 3166-1 alpha-2 country code (two capital letters)", field=name)
        case FieldType.TIMESTAMP:
            try:
                return _iso(parse_timestamp(value))
            except InvalidRecord as exc:
                raise InvalidRecord(exc.message, field=name) from None
        case FieldType.DATE:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise InvalidRecord("not an ISO 8601 date (YYYY-MM-DD)", field=name) from None
    return value


def _fields(rt: RecordType, raw: Mapping[str, object], region: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw.items():
        spec = rt.field(name)
        if spec is None:
            raise InvalidRecord(f"not a field of record type {rt.name}", field=f"fields.{name}")
        if value is not None and value != "":
            out[name] = _value(spec, value, region)
    return out


def _observed_at(rt: RecordType, fields: dict[str, str], raw: object) -> datetime:
    declared = fields.get(rt.timestamp_field)
    top = None
    if raw is not None and raw != "":
        try:
            top = parse_timestamp(_text(raw, "observed_at"))
        except InvalidRecord as exc:
            raise InvalidRecord(exc.message, field="observed_at") from None
    if declared is None and top is None:
        raise InvalidRecord(f"needs observed_at or fields.{rt.timestamp_field}", field="observed_at")
    at = parse_timestamp(declared) if declared is not None else top
    assert at is not None
    if top is not None and top != at:
        raise InvalidRecord(f"differs from fields.{rt.timestamp_field}", field="observed_at")
    fields[rt.timestamp_field] = _iso(at)
    return at


def parse_record(
    raw: Mapping[str, object], schema: Schema, *, region: str = "", dataset: str = "default"
) -> Record:
    """Validate ``raw`` against ``schema`` and return the record to store.

    ``region`` is the node's country, the default for phone numbers without a country code.
    Raises InvalidRecord naming the offending field.
    """
    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        raise InvalidRecord(
            f"unknown key(s) {', '.join(map(repr, unknown[:5]))}", hint=str(sorted(_TOP_LEVEL))
        )
    rid = raw.get("record_id")
    if not isinstance(rid, str) or not _RECORD_ID.fullmatch(rid):
        raise InvalidRecord(
            "missing, or not 1-128 characters from A-Z a-z 0-9 . _ : / @ + -", field="record_id"
        )
    rt = schema.get(str(raw.get("record_type", "")))
    if rt is None:
        known = ", ".join(schema.record_type_names)
        given = raw.get("record_type")
        what = f"{given!r} is not a record type of the node's schema ({known})" if given else "missing"
        raise InvalidRecord(what, field="record_type", hint=f"one of: {known}")
    category = raw.get("category")
    if category is not None and category not in (rt.category.name, int(rt.category)):
        raise InvalidRecord(f"record type {rt.name} is {rt.category.name}", field="category")
    fields_raw = raw.get("fields")
    if not isinstance(fields_raw, Mapping):
        raise InvalidRecord("missing or not an object", field="fields")
    fields = _fields(rt, fields_raw, region)
    observed_at = _observed_at(rt, fields, raw.get("observed_at"))
    missing = [f.name for f in rt.fields if f.required and f.name not in fields]
    if missing:
        raise InvalidRecord(f"required field(s) missing: {', '.join(missing)}", field="fields")
    return Record(rid, rt.name, DataCategory(rt.category), observed_at, fields, dataset)
