"""Schemas declared in configuration (TOML), for agencies whose records the built-in schema
does not describe.

One table per record type, fields in declaration order; a field's category defaults to its
record type's::

    [record_types.vehicle_registration]
    category = "SUBSCRIBER"
    timestamp_field = "registered_at"
    nationality_field = "owner_nationality"   # optional
    residence_field = "owner_residence"       # optional
    description = "A vehicle and its registered owner."

    [record_types.vehicle_registration.fields]
    vin = { type = "string", selector = "VEHICLE_VIN", required = true }
    owner_name = { type = "string" }
    registered_at = { type = "timestamp", required = true }
    owner_nationality = { type = "country" }
    owner_residence = { type = "country" }
    dealer = { type = "string", party = "dealer" }       # another person in the record
    plate_issued = { type = "timestamp", party = "" }     # about the event, no one's identity

A field's ``party`` defaults to ``"subject"`` (the person the record is kept for);
``subject_fact = "nationality" | "residence" | "country"`` marks a country fact about the
subject (the nationality and residence fields are marked so already).

:func:`schema_to_dict` writes any schema in this form, e.g. the built-in one as a template.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from comity.core.errors import ConfigError
from comity.nodes.schema import (
    SUBJECT,
    DataCategory,
    FieldSpec,
    FieldType,
    RecordType,
    Schema,
    SelectorType,
    SubjectFact,
)

__all__ = ["load_schema", "schema_from_dict", "schema_to_dict"]

E = TypeVar("E", bound=enum.Enum)

_TYPE_KEYS = frozenset(
    {"category", "timestamp_field", "nationality_field", "residence_field", "description", "fields"}
)
_FIELD_KEYS = frozenset({"type", "category", "selector", "required", "party", "subject_fact"})


def _member(kind: type[E], value: object, field: str) -> E:
    # Field types are spelled by value ("timestamp"), the wire's enums by name ("TRAFFIC").
    options = {str(m.value) if isinstance(m, str) else m.name: m for m in kind}
    if not isinstance(value, str) or value not in options:
        raise ConfigError(f"must be one of {', '.join(options)}", field=field)
    return options[value]


def _table(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError("must be a table", field=field)
    return value


def _field(name: str, data: object, default: DataCategory, where: str) -> FieldSpec:
    spec = _table(data, where)
    unknown = sorted(set(spec) - _FIELD_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}", field=where)
    category = _member(DataCategory, spec["category"], f"{where}.category") if "category" in spec else default
    selector = _member(SelectorType, spec["selector"], f"{where}.selector") if "selector" in spec else None
    required = spec.get("required", False)
    if not isinstance(required, bool):
        raise ConfigError("must be true or false", field=f"{where}.required")
    party = spec.get("party", SUBJECT)
    if not isinstance(party, str):
        raise ConfigError('must be a party name, or "" for a field about the event', field=f"{where}.party")
    fact = (
        _member(SubjectFact, spec["subject_fact"], f"{where}.subject_fact")
        if "subject_fact" in spec
        else None
    )
    return FieldSpec(
        name,
        _member(FieldType, spec.get("type"), f"{where}.type"),
        category,
        selector,
        required,
        party or None,
        fact,
    )


def _optional_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError("must be a string", field=f"{where}.{key}")
    return value


def _record_type(name: str, data: object, where: str) -> RecordType:
    rt = _table(data, where)
    unknown = sorted(set(rt) - _TYPE_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}", field=where)
    category = _member(DataCategory, rt.get("category"), f"{where}.category")
    fields = _table(rt.get("fields"), f"{where}.fields")
    timestamp = _optional_str(rt, "timestamp_field", where)
    if not timestamp:
        raise ConfigError("names the field holding each record's time", field=f"{where}.timestamp_field")
    try:
        return RecordType(
            name=name,
            category=category,
            fields=tuple(_field(f, spec, category, f"{where}.fields.{f}") for f, spec in fields.items()),
            timestamp_field=timestamp,
            nationality_field=_optional_str(rt, "nationality_field", where),
            residence_field=_optional_str(rt, "residence_field", where),
            description=_optional_str(rt, "description", where) or "",
        )
    except ConfigError as exc:
        if not exc.field.startswith(f"{name}."):
            raise
        # RecordType names the field from the type's name; give the full path in the file.
        message = exc.message.removeprefix(f"{exc.field}: ")
        raise ConfigError(message, field=f"{where}.{exc.field.removeprefix(name + '.')}") from None


def schema_from_dict(data: Mapping[str, Any], *, where: str = "schema") -> Schema:
    """The schema declared by ``data`` (see the module docstring); ConfigError names the field."""
    types = _table(data.get("record_types"), f"{where}.record_types")
    return Schema(_record_type(n, t, f"{where}.record_types.{n}") for n, t in types.items())


def load_schema(path: Path | str) -> Schema:
    """Read a schema from a TOML file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the schema ({exc})", source=str(path)) from None
    try:
        return schema_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(exc.message, source=str(path), hint=exc.hint) from None


def schema_to_dict(schema: Schema) -> dict[str, Any]:
    """``schema`` as data that :func:`schema_from_dict` reads back."""
    types: dict[str, Any] = {}
    for rt in schema:
        fields: dict[str, Any] = {}
        for f in rt.fields:
            spec: dict[str, Any] = {"type": f.type.value}
            if f.category is not rt.category:
                spec["category"] = f.category.name
            if f.selector is not None:
                spec["selector"] = f.selector.name
            if f.required:
                spec["required"] = True
            if f.party != SUBJECT:
                spec["party"] = f.party or ""
            if f.subject_fact is not None:
                spec["subject_fact"] = f.subject_fact.value
            fields[f.name] = spec
        entry: dict[str, Any] = {"category": rt.category.name, "timestamp_field": rt.timestamp_field}
        for key in ("nationality_field", "residence_field"):
            if getattr(rt, key):
                entry[key] = getattr(rt, key)
        if rt.description:
            entry["description"] = rt.description
        entry["fields"] = fields
        types[rt.name] = entry
    return {"record_types": types}
