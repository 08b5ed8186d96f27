"""What the node's records say about a subject: country sets, on SQLite and PostgreSQL; fail closed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from comity.nodes.errors import StoreUnavailable
from comity.nodes.schema import SUBJECT, DataCategory, Record, Selector, SelectorType, default_schema
from comity.nodes.schemafile import schema_from_dict
from comity.nodes.store import RecordStore
from comity.nodes.subjects import (
    OwnParties,
    SubjectFacts,
    SubjectFactsUnreadable,
    SubjectReader,
    facts_from_records,
)

SCHEMA = default_schema()
AT = datetime(2025, 3, 1, tzinfo=UTC)
EMAIL = SelectorType.EMAIL
TARGET = Selector(EMAIL, "target@example.org")


def _account(rid: str, email: str, nationality: str | None, residence: str | None) -> Record:
    fields = {"account_id": rid.upper(), "email": email, "provider": "p", "full_name": "n"}
    if nationality is not None:
        fields["subject_nationality"] = nationality
    if residence is not None:
        fields["subject_residence"] = residence
    return Record(rid, "subscriber_account", DataCategory.SUBSCRIBER, AT, fields)


def _message(rid: str, sender: str, recipient: str, nationality: str) -> Record:
    fields = {
        "message_id": f"<{rid}@x>",
        "sender_email": sender,
        "recipient_email": recipient,
        "client_ip": "192.0.2.9",
        "sent_at": AT.isoformat(),
        "subject_nationality": nationality,
        "subject_residence": nationality,
    }
    return Record(rid, "message_metadata", DataCategory.TRAFFIC, AT, fields)


def test_facts_are_sets_over_every_record_of_the_subject() -> None:
    records = [
        _account("a1", TARGET.value, "US", "US"),
        _account("a2", TARGET.value, "CA", "US"),  # a second account states another nationality
    ]
    facts = facts_from_records(records, [TARGET], SCHEMA)
    assert facts.nationalities == {"US", "CA"} and facts.residences == {"US"}
    assert facts.records == 2
    assert facts.belongs_to("CA") and facts.belongs_to("us") and not facts.belongs_to("MX")


def test_a_field_may_hold_several_codes() -> None:
    facts = facts_from_records([_account("a", TARGET.value, "CA, US", "US")], [TARGET], SCHEMA)
    assert facts.nationalities == {"CA", "US"}


def test_a_message_matched_as_its_recipient_says_nothing_about_the_target() -> None:
    # The message's country fields are its sender's, a Canadian; the target only received it.
    message = _message("m", "someone@example.ca", TARGET.value, "CA")
    assert facts_from_records([message], [TARGET], SCHEMA) == SubjectFacts()
    sent = _message("m2", TARGET.value, "someone@example.ca", "CA")
    assert facts_from_records([sent], [TARGET], SCHEMA).nationalities == {"CA"}


def test_a_record_whose_matching_party_is_unclear_counts() -> None:
    # The store matched it (a case-folded mapped column, say) but no selector field equals the
    # selector exactly: the node cannot tell it is about someone else, so it counts.
    odd = _account("a", "other@example.org", "CA", "CA")
    assert facts_from_records([odd], [TARGET], SCHEMA).nationalities == {"CA"}


@pytest.mark.parametrize(
    ("nationality", "residence"),
    [(None, "US"), ("US", None), ("Canada", "US"), ("US", "C4"), ("usa", "US")],
)
def test_missing_or_malformed_country_fields_are_unreadable(
    nationality: str | None, residence: str | None
) -> None:
    with pytest.raises(SubjectFactsUnreadable):
        facts_from_records([_account("a", TARGET.value, nationality, residence)], [TARGET], SCHEMA)


def test_an_empty_country_field_is_unknown_not_unreadable() -> None:
    assert facts_from_records([_account("a", TARGET.value, "", "")], [TARGET], SCHEMA) == SubjectFacts(
        records=1
    )


def test_an_unknown_record_type_is_unreadable() -> None:
    alien = Record("z", "spaceship", DataCategory.SUBSCRIBER, AT, {"email": TARGET.value})
    with pytest.raises(SubjectFactsUnreadable):
        facts_from_records([alien], [TARGET], SCHEMA)


def test_a_country_field_of_no_declared_role_is_a_country_of_the_subject() -> None:
    schema = schema_from_dict(
        {
            "record_types": {
                "company": {
                    "category": "SUBSCRIBER",
                    "timestamp_field": "at",
                    "fields": {
                        "email": {"type": "string", "selector": "EMAIL"},
                        "at": {"type": "timestamp"},
                        "incorporated_in": {"type": "country"},
                    },
                }
            }
        }
    )
    record = Record(
        "c", "company", DataCategory.SUBSCRIBER, AT, {"email": TARGET.value, "incorporated_in": "CA"}
    )
    assert facts_from_records([record], [TARGET], schema).countries == {"CA"}


def test_the_reader_reads_the_store_whatever_the_category_and_time(store: RecordStore) -> None:
    store.put([_account("a", TARGET.value, "US", "US"), _message("m", TARGET.value, "x@example.org", "CA")])
    facts = SubjectReader(store, SCHEMA).facts([TARGET])
    assert facts.nationalities == {"US", "CA"} and facts.records == 2
    assert SubjectReader(store, SCHEMA).facts([Selector(EMAIL, "nobody@example.org")]) == SubjectFacts()


def test_more_records_than_the_reader_reads_is_unreadable(store: RecordStore) -> None:
    store.put([_account(f"a{i}", TARGET.value, "US", "US") for i in range(4)])
    assert SubjectReader(store, SCHEMA, max_records=4).facts([TARGET]).records == 4
    with pytest.raises(SubjectFactsUnreadable):
        SubjectReader(store, SCHEMA, max_records=3).facts([TARGET])


def test_an_unreadable_stored_record_is_unreadable(store: RecordStore) -> None:
    store.put([_account("a", TARGET.value, "US", "US")])
    with store._backend.engine.begin() as conn:  # a row the store cannot parse
        conn.execute(store._records.update().values(fields="{not json"))
    with pytest.raises(SubjectFactsUnreadable):
        SubjectReader(store, SCHEMA).facts([TARGET])


def test_a_store_that_cannot_be_reached_is_unavailable(tmp_path: object) -> None:
    gone = RecordStore("postgresql://nobody@127.0.0.1:1/none", create=False)
    with pytest.raises(StoreUnavailable):
        SubjectReader(gone, SCHEMA).facts([TARGET])


def test_incidental_own_persons_are_withheld_field_by_field(store: RecordStore) -> None:
    canadian, american = "jeanne@example.ca", "joe@example.com"
    store.put(
        [
            _account("ca", canadian, "CA", "CA"),
            _account("us", american, "US", "US"),
            _account("bad", "garbled@example.org", "Canada", "CA"),
        ]
    )
    own = OwnParties(SubjectReader(store, SCHEMA), SCHEMA, country="CA", targets=[TARGET])
    assert own(_message("m1", TARGET.value, canadian, "US")) == {"recipient"}
    assert own(_message("m2", TARGET.value, american, "US")) == set()
    assert own(_message("m3", TARGET.value, "stranger@example.org", "US")) == set()
    # A party whose facts cannot be read is withheld (fail closed).
    assert own(_message("m4", TARGET.value, "garbled@example.org", "US")) == {"recipient"}
    # A Canadian sender writing to the target: the record's subject is withheld, not the target.
    assert own(_message("m5", canadian, TARGET.value, "CA")) == {SUBJECT}
    # The target is never an incidental party.
    assert own(_message("m6", TARGET.value, TARGET.value, "CA")) == set()
