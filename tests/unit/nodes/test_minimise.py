"""Minimisation: only authorised categories, within the order's time range, minus withheld data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comity.nodes.lookup import TimeRange
from comity.nodes.minimise import Minimiser, WithholdingRule, minimise
from comity.nodes.schema import DataCategory, Record, default_schema

S, T, C = DataCategory.SUBSCRIBER, DataCategory.TRAFFIC, DataCategory.CONTENT
SCHEMA = default_schema()


def _at(day: int) -> datetime:
    return datetime(2025, 6, day, tzinfo=UTC)


def _content(rid: str = "m1", day: int = 10, nationality: str = "CA", residence: str = "CA") -> Record:
    fields = {
        "message_id": "<1@x>",
        "sender_email": "a@example.org",
        "recipient_email": "b@example.org",
        "sent_at": _at(day).isoformat(),
        "subject_line": "hello",
        "body": "the body",
        "subject_nationality": nationality,
        "subject_residence": residence,
    }
    return Record(rid, "message_content", C, _at(day), fields)


def _log(rid: str = "c1", day: int = 10, nationality: str = "US", residence: str = "US") -> Record:
    fields = {
        "account_id": "ACC-1",
        "ip_address": "192.0.2.1",
        "connected_at": _at(day).isoformat(),
        "subject_nationality": nationality,
        "subject_residence": residence,
    }
    return Record(rid, "ip_connection_log", T, _at(day), fields)


def test_content_fields_only_when_content_is_authorised() -> None:
    [full] = minimise([_content()], schema=SCHEMA, categories={S, T, C})
    expected = {
        k: v for k, v in _content().fields.items() if k not in ("subject_nationality", "subject_residence")
    }
    assert full.fields == expected
    [no_subscriber] = minimise([_content()], schema=SCHEMA, categories={T, C})
    assert "subject_nationality" not in no_subscriber.fields
    assert no_subscriber.fields["body"] == "the body"
    # A content record is not released at all without CONTENT.
    assert minimise([_content()], schema=SCHEMA, categories={S, T}) == []


def test_traffic_records_lose_subscriber_fields_without_subscriber() -> None:
    [released] = minimise([_log()], schema=SCHEMA, categories={T})
    assert set(released.fields) == {"account_id", "ip_address", "connected_at"}
    assert released.record_id == "c1" and released.category is T


def test_records_outside_the_time_range_are_dropped() -> None:
    records = [_log(f"c{d}", d) for d in (1, 5, 9, 20)]
    released = minimise(records, schema=SCHEMA, categories={S, T}, time_range=TimeRange(_at(5), _at(9)))
    assert [r.record_id for r in released] == ["c5", "c9"]
    assert len(minimise(records, schema=SCHEMA, categories={T}, time_range=None)) == 4


def test_own_persons_rule_withholds_named_fields() -> None:
    rule = WithholdingRule.own_persons("ca", fields=["body", "subject_line"])
    released = minimise(
        [
            _content("own", nationality="CA", residence="US"),
            _content("foreign", nationality="US", residence="US"),
        ],
        schema=SCHEMA,
        categories={S, T, C},
        withholding=[rule],
    )
    own, foreign = released
    assert "body" not in own.fields and "subject_line" not in own.fields
    assert own.fields["sender_email"] == "a@example.org"
    assert foreign.fields["body"] == "the body"


def test_own_persons_rule_without_fields_withholds_the_record() -> None:
    rule = WithholdingRule.own_persons("US")
    released = minimise(
        [_log("resident", nationality="CA", residence="US"), _log("other", nationality="CA", residence="CA")],
        schema=SCHEMA,
        categories={S, T},
        withholding=[rule],
    )
    assert [r.record_id for r in released] == ["other"]


def test_unknown_subject_is_withheld_only_when_asked() -> None:
    anonymous = Record(
        "x", "ip_connection_log", T, _at(3), {"account_id": "A", "connected_at": _at(3).isoformat()}
    )
    keep = minimise(
        [anonymous], schema=SCHEMA, categories={T}, withholding=[WithholdingRule.own_persons("US")]
    )
    assert len(keep) == 1
    strict = WithholdingRule.own_persons("US", withhold_unknown=True)
    assert minimise([anonymous], schema=SCHEMA, categories={T}, withholding=[strict]) == []


def test_undeclared_fields_and_unknown_record_types_are_never_released() -> None:
    smuggled = _log()
    smuggled = Record(
        smuggled.record_id, smuggled.record_type, T, smuggled.observed_at, {**smuggled.fields, "x": "1"}
    )
    [released] = minimise([smuggled], schema=SCHEMA, categories={S, T, C})
    assert "x" not in released.fields
    alien = Record("z", "spaceship", S, _at(1), {"a": "b"})
    assert minimise([alien], schema=SCHEMA, categories={S, T, C}) == []


def test_input_records_are_not_modified() -> None:
    record = _content()
    before = dict(record.fields)
    minimise(
        [record],
        schema=SCHEMA,
        categories={T},
        withholding=[WithholdingRule.own_persons("CA", fields=["body"])],
    )
    assert dict(record.fields) == before


@dataclass
class _Scope:
    categories: frozenset[DataCategory]
    time_range: TimeRange | None


def test_minimiser_applies_a_scope() -> None:
    m = Minimiser(SCHEMA, [WithholdingRule.own_persons("US", fields=["ip_address"])])
    [released] = m.apply([_log()], _Scope(frozenset({T}), TimeRange(_at(1), _at(30))))
    assert set(released.fields) == {"account_id", "connected_at"}
    assert m.apply([_log()], _Scope(frozenset({T}), TimeRange(_at(11), None))) == []


@given(
    cats=st.sets(st.sampled_from(list(DataCategory))),
    day=st.integers(1, 28),
    nationality=st.sampled_from(["US", "CA", ""]),
)
@pytest.mark.parametrize("make", [_content, _log])
def test_released_fields_are_always_authorised(
    make: object, cats: set[DataCategory], day: int, nationality: str
) -> None:
    record = make(day=day, nationality=nationality)  # type: ignore[operator]
    for r in minimise([record], schema=SCHEMA, categories=cats, time_range=TimeRange(_at(5), _at(20))):
        assert r.category in cats and 5 <= r.observed_at.day <= 20
        rt = SCHEMA.get(r.record_type)
        assert rt is not None
        assert all(rt.field(name).category in cats for name in r.fields)  # type: ignore[union-attr]
