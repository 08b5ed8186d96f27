"""The fast canonical encoder writes exactly RFC 8785's bytes for every event kind."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from comity.audit import events
from comity.audit.canonical import canonical_json

# Every character class where encoders differ: controls, quotes, backslash, DEL, U+2028,
# non-ASCII, the private-use plane just above the surrogates, astral characters.
_SPECIAL = st.sampled_from(["\x00", "\x1f", '"', "\\", "\x7f", "\u2028", "é", "ß", "\ue000", "\uffff", "😀"])
TEXT = st.text(st.one_of(st.characters(blacklist_categories=["Cs"]), _SPECIAL), max_size=12)
INTS = st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
SCALARS = st.one_of(TEXT, INTS, st.booleans(), st.none(), st.floats(allow_nan=False, allow_infinity=False))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)

_BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "str": TEXT,
    "int": INTS,
    "bool": st.booleans(),
    "Literal['ALLOW', 'DENY']": st.sampled_from(["ALLOW", "DENY"]),
    "tuple[str, ...]": st.tuples(TEXT, TEXT) | st.tuples(),
    "tuple[CheckPair, ...]": st.lists(st.tuples(TEXT, TEXT), max_size=3).map(tuple),
    "tuple[tuple[str, str, int], ...]": st.lists(st.tuples(TEXT, TEXT, INTS), max_size=3).map(tuple),
    "Mapping[str, Any]": st.dictionaries(TEXT, JSON, max_size=6),
}


def _event(kind: type[Any]) -> st.SearchStrategy[Any]:
    return st.builds(kind, **{f.name: _BY_TYPE[f.type] for f in fields(kind)})


KINDS = sorted(events._KINDS.values(), key=lambda k: k.kind)


def test_every_field_type_of_every_event_kind_is_generated() -> None:
    # A new field type must get a strategy here, or the comparison below would not cover it.
    assert {f.type for kind in KINDS for f in fields(kind)} <= set(_BY_TYPE)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_encoded_events_are_byte_identical_to_rfc8785(kind: type[Any], data: st.DataObject) -> None:
    event = data.draw(_event(kind))
    try:
        expected = bytes(rfc8785.dumps({"v": events.EVENT_VERSION, "kind": kind.kind, **_asdict(event)}))
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            events.encode_event(event)
        return
    assert events.encode_event(event) == expected


def _asdict(event: Any) -> dict[str, Any]:
    return asdict(event)


@settings(max_examples=400, deadline=None)
@given(value=JSON)
def test_any_json_value_is_byte_identical_to_rfc8785(value: Any) -> None:
    try:
        expected = bytes(rfc8785.dumps(value))
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"😀": 1, "\ue000": 2},  # UTF-16 order puts the astral key first; code-point order does not
        {"a": 1.0, "b": 1e21, "c": -0.0, "d": 5e-324},
        {"n": 2**53 - 1, "m": -(2**53 - 1)},
        {"ctl": "\x00\x08\t\n\x0b\x0c\r\x1f\x7f", "q": '"\\/', "u": "\u2028é😀"},
        {"k\x00": [True, False, None, [], {}]},
    ],
)
def test_the_cases_where_encoders_differ(value: Any) -> None:
    assert canonical_json(value) == bytes(rfc8785.dumps(value))


@pytest.mark.parametrize("value", [{"big": 2**53}, {"s": "\ud800"}, {"\udfff": 1}, {1: "x"}, float("nan")])
def test_what_rfc8785_refuses_is_refused_the_same_way(value: Any) -> None:
    with pytest.raises(Exception) as reference:
        rfc8785.dumps(value)
    with pytest.raises(reference.type):
        canonical_json(value)
