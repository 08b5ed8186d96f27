"""Synthetic records: reproducible, valid against the schema, with findable well-known subjects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comity.core.errors import InvalidArgument
from comity.core.selectors import normalise
from comity.nodes.schema import SelectorType, default_schema
from comity.nodes.synthetic import generate
from comity.nodes.validate import parse_record


def test_same_seed_same_records_other_seed_other_records() -> None:
    assert generate("US", 20, 3).records == generate("US", 20, 3).records
    assert generate("US", 20, 3).records != generate("US", 20, 4).records


@pytest.mark.parametrize("country", ["US", "CA"])
def test_every_record_is_valid_and_already_normalised(country: str) -> None:
    data = generate(country, 30, 1)
    schema = default_schema()
    for raw in data.records:
        record = parse_record(raw, schema, region=country)
        assert dict(record.fields) == raw["fields"]


@pytest.mark.parametrize("country", ["US", "CA"])
def test_both_nationalities_live_in_both_countries(country: str) -> None:
    data = generate(country, 40, 2)
    combos = {(p.nationality, p.residence) for p in data.people}
    assert combos == {("US", "US"), ("US", "CA"), ("CA", "US"), ("CA", "CA")}
    assert {(p.nationality, p.residence) for p in data.well_known} == combos


def test_well_known_subjects_have_every_record_type_and_valid_selectors() -> None:
    data = generate("CA", 10, 5)
    types = {r["record_type"] for r in data.records}
    assert types == set(default_schema().record_type_names)
    for person in data.well_known:
        for kind, value in person.selectors.items():
            assert normalise(kind, value, region="CA") == value
        mine = [r for r in data.records if set(person.selectors.values()) & set(r["fields"].values())]
        assert {r["record_type"] for r in mine} == types


def test_jsonl_round_trip(tmp_path: Path) -> None:
    data = generate("US", 5, 1)
    path = data.write_jsonl(tmp_path / "us.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == data.records


def test_a_malformed_country_code_is_refused() -> None:
    for bad in ("FRA", "fr", "F1", ""):
        with pytest.raises(InvalidArgument, match="country code"):
            generate(bad, 5, 1)


def test_any_country_gets_records_in_its_own_style_or_the_default() -> None:
    gb = generate("GB", 8, 1)
    assert {p.nationality for p in gb.people} == {"GB", "US"}  # the data file's other country for GB
    assert all(p.selectors[SelectorType.PHONE].startswith("+44") for p in gb.people if p.residence == "GB")
    invented = generate("XA", 8, 1, other="XB")
    assert {p.nationality for p in invented.people} == {"XA", "XB"}
    assert invented.records[0]["record_id"].startswith("xa-")
