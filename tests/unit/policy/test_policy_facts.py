"""QueryFacts: typed, complete, and built from a mapping with errors that name the fact."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from typing import Any

import pytest

from comity.core.errors import InvalidArgument
from comity.policy import QueryFacts, bundle_path


def _defaults() -> dict[str, Any]:
    data = tomllib.loads((bundle_path("us-ca-agreement") / "tests.toml").read_text(encoding="utf-8"))
    return dict(data["defaults"])


def test_from_mapping_turns_lists_into_tuples() -> None:
    facts = QueryFacts.from_mapping(_defaults())
    assert facts.selectors == (("EMAIL", "negotiator@example.net"),)
    assert facts.categories == ("SUBSCRIBER",)
    assert facts.selector_count == 1
    assert facts.now == dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)


def test_every_fact_is_required() -> None:
    data = _defaults()
    del data["order_emergency"]
    with pytest.raises(InvalidArgument, match=r"missing fact.*order_emergency"):
        QueryFacts.from_mapping(data)


def test_unknown_fact_is_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"unknown fact.*colour"):
        QueryFacts.from_mapping({**_defaults(), "colour": "red"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_records", "10"),
        ("max_records", -1),
        ("agency_queries_today", False),
        ("order_emergency", "no"),
        ("selectors", [["EMAIL"]]),
        ("selectors", [["EMAIL", 5]]),
        ("now", dt.datetime(2026, 1, 1)),
        ("requesting_country", None),
    ],
)
def test_mistyped_fact_is_named(field: str, value: Any) -> None:
    with pytest.raises(InvalidArgument) as info:
        QueryFacts.from_mapping({**_defaults(), field: value})
    assert field in info.value.message


def test_facts_are_frozen_plain_values() -> None:
    facts = QueryFacts.from_mapping(_defaults())
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.max_records = 5  # type: ignore[misc]
    kinds = {type(getattr(facts, f.name)) for f in dataclasses.fields(facts)}
    assert kinds <= {str, int, bool, tuple, dt.datetime, type(None)}
