"""Events: canonical bytes, round trips, and selectors only as commitments."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from comity.audit.commitments import CommitmentOpening, commit_selector
from comity.audit.errors import InvalidEntry, InvalidProof
from comity.audit.events import (
    DecisionEvent,
    DisclosedEvent,
    decision_event,
    decode_event,
    disclosed_event,
    encode_event,
    failed_event,
    forwarded_event,
    refused_event,
)

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DIGEST = bytes(range(32))


def _decision() -> tuple[bytes, list[CommitmentOpening]]:
    return decision_event(
        query_id="q-1",
        query_digest=DIGEST,
        at=AT,
        investigator="us.fbi/agent-7",
        agency="us.fbi",
        target_node="ca.rcmp-node",
        order_id="order-9",
        offence_code="US-18-1956",
        categories=["subscriber"],
        allowed=True,
        rule_codes=[],
        bundle_digest="sha256:ab",
        selectors=[("email", "suspect@example.org"), ("phone", "+15555550100")],
    )


def test_decision_entry_is_canonical_and_hides_selectors() -> None:
    entry, openings = _decision()
    body = json.loads(entry)
    assert entry == json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert body["v"] == 1 and body["kind"] == "decision" and body["decision"] == "ALLOW"
    assert body["query_digest"] == DIGEST.hex() and body["at"] == "2026-03-01T12:00:00.000000Z"
    assert b"suspect@example.org" not in entry and b"5555550100" not in entry
    assert body["selector_commitments"] == [o.commitment.hex() for o in openings]
    for opening, commitment in zip(openings, body["selector_commitments"], strict=True):
        opening.verify(bytes.fromhex(commitment))


def test_commitments_are_salted_and_openings_bind() -> None:
    one, two = commit_selector("email", "a@example.org"), commit_selector("email", "a@example.org")
    assert one.commitment != two.commitment  # fresh salt: equal selectors are not linkable
    with pytest.raises(InvalidProof):
        CommitmentOpening(one.salt, "email", "b@example.org").verify(one.commitment)
    with pytest.raises(InvalidProof):
        CommitmentOpening(one.salt, "phone", "a@example.org").verify(one.commitment)


def test_events_round_trip() -> None:
    entries = [
        _decision()[0],
        refused_event(
            query_id="q", query_digest=DIGEST, at=AT, investigator="i", agency="a", reason_code="REPLAY"
        ),
        forwarded_event(query_id="q", query_digest=DIGEST, at=AT, node="n"),
        disclosed_event(
            query_id="q",
            query_digest=DIGEST,
            at=AT,
            node="n",
            hit=True,
            record_count=2,
            records_digest=DIGEST,
            node_signature=b"\x01" * 64,
        ),
        failed_event(query_id="q", query_digest=DIGEST, at=AT, node="n", reason="UNAVAILABLE"),
    ]
    for entry in entries:
        assert encode_event(decode_event(entry)) == entry
    assert isinstance(decode_event(entries[0]), DecisionEvent)
    disclosed = decode_event(entries[3])
    assert isinstance(disclosed, DisclosedEvent) and disclosed.record_count == 2


def test_times_are_utc_and_must_be_aware() -> None:
    entry = forwarded_event(
        query_id="q", query_digest=DIGEST, at=AT.astimezone(timezone(timedelta(hours=-5))), node="n"
    )
    assert json.loads(entry)["at"] == "2026-03-01T12:00:00.000000Z"
    with pytest.raises(ValueError):
        forwarded_event(query_id="q", query_digest=DIGEST, at=datetime(2026, 3, 1), node="n")


@pytest.mark.parametrize(
    "entry",
    [
        b"not json",
        b"[]",
        b'{"v":2,"kind":"forwarded"}',
        b'{"v":1,"kind":"other"}',
        b'{"v":1,"kind":"forwarded","query_id":"q"}',
    ],
)
def test_unknown_entries_are_refused(entry: bytes) -> None:
    with pytest.raises(InvalidEntry):
        decode_event(entry)


def test_a_decision_carries_every_audit_field_and_commits_to_the_personal_ones() -> None:
    entry, openings = decision_event(
        query_id="q-2",
        query_digest=DIGEST,
        at=AT,
        investigator="us.fbi/agent-7",
        agency="us.fbi",
        target_node="ca-node",
        order_id="order-9",
        offence_code="US-18-1956",
        categories=["SUBSCRIBER"],
        allowed=False,
        rule_codes=["SERIOUS_CRIME"],
        bundle_digest="sha256:ab",
        selectors=[("EMAIL", "suspect@example.org")],
        case_reference="FBI-2026-77",
        authority="us.court.sdny",
        order_digest=b"\x05" * 32,
        justification=("the suspect wired the ransom", "the account received it"),
        target={
            "nationalities": ["US", "CA"],
            "residences": ["CA"],
            "locations": ["CA"],
            "kind": "NATURAL_PERSON",
        },
        checks=[("ORDER_SCOPE_SELECTOR", "INDEPENDENT_AUTHORISATION")],
        facts={"max_records": 10, "now": "2026-03-01T12:00:00.000000Z"},
    )
    body = json.loads(entry)
    assert body["case_reference"] == "FBI-2026-77" and body["authority"] == "us.court.sdny"
    assert body["order_digest"] == "05" * 32
    assert body["checks"] == [["ORDER_SCOPE_SELECTOR", "INDEPENDENT_AUTHORISATION"]]
    assert body["facts"] == {"max_records": 10, "now": "2026-03-01T12:00:00.000000Z"}
    assert b"ransom" not in entry and b"suspect@" not in entry and b'"CA"' not in entry
    event = decode_event(entry)
    assert isinstance(event, DecisionEvent)
    assert event.checks == (("ORDER_SCOPE_SELECTOR", "INDEPENDENT_AUTHORISATION"),)
    assert [o.selector_type for o in openings] == ["EMAIL", "JUSTIFICATION", "TARGET"]
    for opening, commitment in zip(openings, event.commitments, strict=True):
        opening.verify(bytes.fromhex(commitment))
    assert json.loads(openings[1].value) == {
        "facts": "the suspect wired the ransom",
        "link_to_offence": "the account received it",
    }
    assert json.loads(openings[2].value) == {
        "kind": "NATURAL_PERSON",
        "locations": ["CA"],
        "nationalities": ["US", "CA"],
        "residences": ["CA"],
    }


def test_entries_written_before_the_added_fields_still_decode() -> None:
    body = json.loads(_decision()[0])
    for added in ("case_reference", "authority", "order_digest", "justification_commitment",
                  "target_commitment", "checks", "facts", "rules_commitment"):  # fmt: skip
        del body[added]
    old = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    event = decode_event(old)
    assert isinstance(event, DecisionEvent) and event.checks == () and event.facts == {}
    body["unexpected"] = 1
    with pytest.raises(InvalidEntry):
        decode_event(json.dumps(body).encode())


def test_sealed_rules_are_only_a_commitment_and_open_last() -> None:
    entry, openings = decision_event(
        query_id="q-3",
        query_digest=DIGEST,
        at=AT,
        investigator="us.fbi/agent-7",
        agency="us.fbi",
        target_node="ca-node",
        order_id="order-9",
        offence_code="US-18-1956",
        categories=["SUBSCRIBER"],
        allowed=False,
        rule_codes=["REFUSED", "SERIOUS_CRIME"],
        sealed_rules=["NO_TARGETING", "SERIOUS_CRIME"],
        bundle_digest="sha256:ab",
        selectors=[("EMAIL", "suspect@example.org")],
        justification=("facts", "link"),
    )
    assert b"NO_TARGETING" not in entry
    event = decode_event(entry)
    assert isinstance(event, DecisionEvent) and event.rule_codes == ("REFUSED", "SERIOUS_CRIME")
    assert [o.selector_type for o in openings] == ["EMAIL", "JUSTIFICATION", "RULES"]
    assert event.commitments[-1] == event.rules_commitment == openings[-1].commitment.hex()
    openings[-1].verify(bytes.fromhex(event.rules_commitment))
    assert json.loads(openings[-1].value) == {"rule_codes": ["NO_TARGETING", "SERIOUS_CRIME"]}
    # Without sealed rules there is nothing to open.
    plain = decode_event(_decision()[0])
    assert isinstance(plain, DecisionEvent) and plain.rules_commitment == ""


def test_a_refusal_names_its_checks() -> None:
    entry = refused_event(
        query_id="q", query_digest=DIGEST, at=AT, investigator="i", agency="a",
        reason_code="UNAUTHENTICATED", checks=[("QUERY_STALE", "AUDIT_FIELDS")],
    )  # fmt: skip
    assert json.loads(entry)["checks"] == [["QUERY_STALE", "AUDIT_FIELDS"]]
