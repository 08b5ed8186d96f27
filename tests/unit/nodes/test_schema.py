"""The declared record model and its agreement with the wire contract."""

from __future__ import annotations

import pytest

from comity.core.errors import ConfigError
from comity.nodes.schema import (
    DataCategory,
    FieldSpec,
    FieldType,
    RecordType,
    Schema,
    SelectorType,
    default_schema,
)
from comity.v1 import comity_pb2 as pb


def test_enums_carry_the_wire_numbers() -> None:
    for t in SelectorType:
        assert pb.SelectorType.Value(t.name) == t.value
    for c in DataCategory:
        assert pb.DataCategory.Value(c.name) == c.value
    wire = {v.name for v in pb.SelectorType.DESCRIPTOR.values if v.number}
    assert wire == {t.name for t in SelectorType}


def test_default_schema_covers_the_five_record_types() -> None:
    schema = default_schema()
    assert schema.record_type_names == (
        "subscriber_account",
        "ip_connection_log",
        "message_metadata",
        "message_content",
        "firearm_trace",
    )
    assert schema.selector_types() == frozenset(SelectorType)


@pytest.mark.parametrize("rt", list(default_schema()), ids=lambda rt: rt.name)
def test_every_record_type_names_time_subject_and_selectors(rt: RecordType) -> None:
    assert rt.field(rt.timestamp_field) is not None
    assert rt.nationality_field and rt.residence_field
    assert rt.selector_fields
    # No field is more sensitive than the record that holds it.
    assert all(f.category <= rt.category for f in rt.fields)


def test_content_lives_only_in_message_content() -> None:
    schema = default_schema()
    content = {(rt.name, f.name) for rt in schema for f in rt.fields if f.category is DataCategory.CONTENT}
    assert content == {("message_content", "subject_line"), ("message_content", "body")}


def test_timestamp_field_must_be_declared_as_timestamp() -> None:
    s = DataCategory.SUBSCRIBER
    with pytest.raises(ConfigError, match="timestamp_field"):
        RecordType("x", s, (FieldSpec("when", FieldType.STRING, s),), timestamp_field="when")


def test_nationality_field_must_be_a_country() -> None:
    s = DataCategory.SUBSCRIBER
    fields = (FieldSpec("at", FieldType.TIMESTAMP, s), FieldSpec("nat", FieldType.STRING, s))
    with pytest.raises(ConfigError, match="nationality_field"):
        RecordType("x", s, fields, timestamp_field="at", nationality_field="nat")


def test_duplicate_names_are_refused() -> None:
    s = DataCategory.SUBSCRIBER
    at = FieldSpec("at", FieldType.TIMESTAMP, s)
    with pytest.raises(ConfigError, match="declared twice"):
        RecordType("x", s, (at, at), timestamp_field="at")
    rt = RecordType("x", s, (at,), timestamp_field="at")
    with pytest.raises(ConfigError, match="declared twice"):
        Schema([rt, rt])
    with pytest.raises(ConfigError, match="at least one"):
        Schema([])
