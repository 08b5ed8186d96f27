"""No field that says which country a person belongs to can leave a node, for every record type."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comity.nodes.minimise import minimise
from comity.nodes.schema import (
    SUBJECT,
    DataCategory,
    FieldType,
    Record,
    RecordType,
    SubjectFact,
    default_schema,
)
from comity.nodes.schemafile import schema_from_dict, schema_to_dict
from comity.nodes.synthetic import generate

SCHEMA = default_schema()
ALL = frozenset(DataCategory)
AT = datetime(2025, 6, 1, tzinfo=UTC)


def _full(rt: RecordType, country: str = "CA") -> Record:
    """A record of ``rt`` with every declared field filled."""
    fields = {f.name: country if f.type is FieldType.COUNTRY else f"{f.name}-value" for f in rt.fields}
    fields[rt.timestamp_field] = AT.isoformat()
    return Record(f"{rt.name}-1", rt.name, rt.category, AT, fields)


def test_every_record_type_declares_its_subject_facts() -> None:
    for rt in SCHEMA:
        facts = {f.subject_fact for f in rt.subject_facts}
        assert facts == {SubjectFact.NATIONALITY, SubjectFact.RESIDENCE}, rt.name
        assert rt.nationality_field and rt.residence_field
        assert {rt.nationality_field, rt.residence_field} <= rt.subject_country_fields


@pytest.mark.parametrize("rt", list(SCHEMA), ids=lambda rt: rt.name)
def test_no_subject_country_field_is_released_from_any_record_type(rt: RecordType) -> None:
    [released] = minimise([_full(rt)], schema=SCHEMA, categories=ALL)
    assert not rt.subject_country_fields & set(released.fields)
    assert not any(rt.field(n).type is FieldType.COUNTRY for n in released.fields)  # type: ignore[union-attr]
    # Everything else of the record is released when every category is authorised.
    assert set(released.fields) == {f.name for f in rt.fields} - rt.subject_country_fields


@pytest.mark.parametrize("country", ["US", "CA"])
def test_no_synthetic_record_releases_a_country(country: str) -> None:
    records = [
        Record(
            r["record_id"],
            r["record_type"],
            SCHEMA.get(r["record_type"]).category,  # type: ignore[union-attr]
            AT,
            r["fields"],
        )
        for r in generate(country, 30, 3).records
    ]
    released = minimise(records, schema=SCHEMA, categories=ALL)
    assert len(released) == len(records)
    for r in released:
        assert not {"subject_nationality", "subject_residence"} & set(r.fields)


@given(
    cats=st.sets(st.sampled_from(list(DataCategory))),
    rt=st.sampled_from(list(SCHEMA)),
    country=st.sampled_from(["US", "CA", "MX", ""]),
)
def test_no_scope_releases_a_country(cats: set[DataCategory], rt: RecordType, country: str) -> None:
    for r in minimise([_full(rt, country)], schema=SCHEMA, categories=cats):
        assert not rt.subject_country_fields & set(r.fields)


def test_an_operators_country_field_is_withheld_even_without_a_declared_role() -> None:
    schema = schema_from_dict(
        {
            "record_types": {
                "vehicle": {
                    "category": "SUBSCRIBER",
                    "timestamp_field": "at",
                    "fields": {
                        "vin": {"type": "string", "selector": "VEHICLE_VIN"},
                        "at": {"type": "timestamp"},
                        "plate_country": {"type": "country"},
                        "owner_citizenship": {"type": "country", "subject_fact": "nationality"},
                    },
                }
            }
        }
    )
    rt = schema.get("vehicle")
    assert rt is not None and rt.nationality_field == "owner_citizenship"
    record = Record(
        "v",
        "vehicle",
        DataCategory.SUBSCRIBER,
        AT,
        {"vin": "V", "at": AT.isoformat(), "plate_country": "CA", "owner_citizenship": "CA"},
    )
    [released] = minimise([record], schema=schema, categories=ALL)
    assert set(released.fields) == {"vin", "at"}


def test_parties_and_subject_facts_survive_a_schema_file_round_trip() -> None:
    again = schema_from_dict(schema_to_dict(SCHEMA))
    for rt in SCHEMA:
        other = again.get(rt.name)
        assert other is not None and other.fields == rt.fields
    message = SCHEMA.get("message_metadata")
    assert message is not None
    assert [f.name for f in message.party_fields("recipient")] == ["recipient_email"]
    assert message.parties == (SUBJECT, "recipient")


def test_a_subject_fact_must_be_a_country_of_the_subject() -> None:
    from comity.core.errors import ConfigError
    from comity.nodes.schema import FieldSpec

    with pytest.raises(ConfigError):
        FieldSpec("n", FieldType.STRING, DataCategory.SUBSCRIBER, subject_fact=SubjectFact.NATIONALITY)
    with pytest.raises(ConfigError):
        FieldSpec(
            "n",
            FieldType.COUNTRY,
            DataCategory.SUBSCRIBER,
            party="recipient",
            subject_fact=SubjectFact.NATIONALITY,
        )
