"""Building and signing queries in the SDK."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from comity.core.dsse import PAYLOAD_QUERY, verify_envelope
from comity.core.errors import InvalidArgument
from comity.core.keys import SigningKey
from comity.sdk.query import (
    QuerySpec,
    Selector,
    build_query,
    parse_category,
    parse_kind,
    parse_selector,
    sign_query,
)
from comity.v1 import comity_pb2 as pb

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_query_carries_everything_the_gateway_checks() -> None:
    spec = QuerySpec(
        target_node="ca-node",
        selectors=[Selector("email", "a@example.org"), Selector("ip-address", "192.0.2.1")],
        categories=["subscriber", "traffic"],
        kind="hit-check",
        case_reference="FBI-2026-0042",
        facts="Ransom note sent from this address",
        link_to_offence="The address received the ransom payment instructions",
        time_range=(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)),
        max_records=50,
    )
    q = build_query(spec, investigator="us.fbi/agent-1", agency="us.fbi", now=NOW)
    assert q.kind == pb.HIT_CHECK
    assert [(s.type, s.value) for s in q.selectors] == [
        (pb.EMAIL, "a@example.org"),
        (pb.IP_ADDRESS, "192.0.2.1"),
    ]
    assert list(q.categories) == [pb.SUBSCRIBER, pb.TRAFFIC]
    assert q.issued_at.ToDatetime(tzinfo=UTC) == NOW
    assert q.time_range.start.ToDatetime(tzinfo=UTC) == datetime(2026, 1, 1, tzinfo=UTC)
    again = build_query(spec, investigator="us.fbi/agent-1", agency="us.fbi", now=NOW)
    assert q.query_id and again.query_id and q.query_id != again.query_id  # a fresh id per query


def test_an_explicit_query_id_is_kept() -> None:
    spec = QuerySpec("ca-node", [Selector("email", "a@b.org")], query_id="case-42/q-1")
    assert build_query(spec, investigator="i", agency="a", now=NOW).query_id == "case-42/q-1"


def test_signed_query_verifies_over_its_exact_bytes() -> None:
    key = SigningKey.generate("us.fbi/agent-1")
    q = build_query(
        QuerySpec("ca-node", [Selector("email", "a@b.org")]), investigator="i", agency="a", now=NOW
    )
    env = sign_query(q, key)
    payload, _ = verify_envelope(env, payload_type=PAYLOAD_QUERY, keys={key.key_id: key.verifying_key})
    assert pb.Query.FromString(payload) == q


@pytest.mark.parametrize("text", ["email", "email:", ":x", "nonsense"])
def test_malformed_selector_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_selector(text)


def test_unknown_names_are_refused_with_the_choices() -> None:
    with pytest.raises(InvalidArgument, match="unknown selector type") as info:
        Selector("passport", "X1").to_proto()
    assert info.value.hint is not None and "email" in info.value.hint
    with pytest.raises(InvalidArgument):
        parse_category("everything")
    with pytest.raises(InvalidArgument):
        parse_kind("bulk")
    assert parse_selector("phone:+1 613 555 0100") == Selector("phone", "+1 613 555 0100")
