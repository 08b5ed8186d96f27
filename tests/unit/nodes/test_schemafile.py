"""Schemas declared in TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from comity.core.errors import ConfigError
from comity.nodes.schema import DataCategory, FieldType, SelectorType, default_schema
from comity.nodes.schemafile import load_schema, schema_from_dict, schema_to_dict
from comity.nodes.store import RecordStore
from comity.nodes.validate import parse_record

VEHICLES = """
[record_types.vehicle_registration]
category = "SUBSCRIBER"
timestamp_field = "registered_at"
nationality_field = "owner_nationality"
description = "A vehicle and its registered owner."

[record_types.vehicle_registration.fields]
vin = { type = "string", selector = "VEHICLE_VIN", required = true }
owner_name = { type = "string" }
registered_at = { type = "timestamp", required = true }
owner_nationality = { type = "country" }
"""


def test_default_schema_round_trips() -> None:
    schema = default_schema()
    again = schema_from_dict(schema_to_dict(schema))
    assert list(again) == list(schema)


def test_a_declared_schema_drives_validation_and_lookup(tmp_path: Path) -> None:
    path = tmp_path / "schema.toml"
    path.write_text(VEHICLES, encoding="utf-8")
    schema = load_schema(path)
    [rt] = list(schema)
    assert rt.category is DataCategory.SUBSCRIBER and rt.residence_field is None
    vin = rt.field("vin")
    assert vin is not None and vin.selector is SelectorType.VEHICLE_VIN and vin.type is FieldType.STRING
    raw = {
        "record_id": "v1",
        "record_type": "vehicle_registration",
        "fields": {"vin": "1hgcm82633a004352", "registered_at": "2024-05-01T00:00:00Z"},
    }
    record = parse_record(raw, schema)
    assert record.fields["vin"] == "1HGCM82633A004352"
    with RecordStore("sqlite://", schema=schema) as store:
        store.put([record])
        assert store.get("v1") == record


RT = "schema.record_types.vehicle_registration"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('category = "SUBSCRIBER"', 'category = "SECRET"', f"{RT}.category"),
        ('timestamp_field = "registered_at"', 'timestamp_field = "owner_name"', f"{RT}.timestamp_field"),
        ('timestamp_field = "registered_at"', "", f"{RT}.timestamp_field"),
        ('nationality_field = "owner_nationality"', 'nationality_field = "vin"', f"{RT}.nationality_field"),
        ('category = "SUBSCRIBER"', 'category = "SUBSCRIBER"\ncolour = "red"', RT),
    ],
)
def test_errors_name_the_field(old: str, new: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        schema_from_dict(tomllib.loads(VEHICLES.replace(old, new)))
    assert caught.value.field == field


def test_bad_field_declarations_are_named() -> None:
    for bad, field in [
        ('vin = { type = "blob" }', "schema.record_types.vehicle_registration.fields.vin.type"),
        (
            'vin = { type = "string", selector = "DNA" }',
            "schema.record_types.vehicle_registration.fields.vin.selector",
        ),
        (
            'vin = { type = "string", required = "yes" }',
            "schema.record_types.vehicle_registration.fields.vin.required",
        ),
        ('vin = { type = "string", indexed = true }', "schema.record_types.vehicle_registration.fields.vin"),
    ]:
        text = VEHICLES.replace('vin = { type = "string", selector = "VEHICLE_VIN", required = true }', bad)
        with pytest.raises(ConfigError) as caught:
            schema_from_dict(tomllib.loads(text))
        assert caught.value.field == field


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "schema.toml"
    path.write_text("record_types = [", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read the schema"):
        load_schema(path)
    with pytest.raises(ConfigError, match="must be a table"):
        schema_from_dict({})
