"""Serving an agency's own PostgreSQL tables and views through a column mapping."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from comity.core.errors import ConfigError
from comity.nodes.errors import StoreNotReady, StoreUnavailable
from comity.nodes.lookup import TimeRange
from comity.nodes.mapped import MappedSource, SelectorColumn, TableMapping
from comity.nodes.minimise import minimise
from comity.nodes.schema import DataCategory, Selector, SelectorType, default_schema

pytestmark = pytest.mark.postgres
T = SelectorType
SCHEMA = default_schema()


_AGENCY_DDL = [
    "CREATE SCHEMA {s}",
    "CREATE TABLE {s}.subscribers (id integer PRIMARY KEY, login text, mail text, msisdn text, holder text,"
    " opened timestamptz NOT NULL, born date, citizenship char(2), lives_in char(2), internal_score integer)",
    "CREATE INDEX ON {s}.subscribers (mail)",
    "CREATE INDEX ON {s}.subscribers (msisdn)",
    "CREATE INDEX ON {s}.subscribers (lower(login))",
    "INSERT INTO {s}.subscribers VALUES"
    " (1, 'Alice', 'alice@example.org', '+14165550123', 'Alice A', '2024-01-05 10:00+00',"
    "  '1990-02-03', 'CA', 'CA', 7),"
    " (2, 'bob', 'bob@example.org', '+12125550188', 'Bob B', '2024-03-01 00:00+05',"
    "  NULL, 'US', 'CA', 3)",
    "CREATE TABLE {s}.sessions (sid text PRIMARY KEY, account text, addr inet, started timestamp)",
    "CREATE INDEX ON {s}.sessions (account)",
    "INSERT INTO {s}.sessions VALUES ('s1', 'ACC-1', '192.0.2.1', '2025-01-01 08:00'),"
    " ('s2', 'ACC-1', '2001:db8::1', '2025-02-01 08:00'), ('s3', 'ACC-2', '192.0.2.9', '2025-03-01 08:00')",
    "CREATE VIEW {s}.session_view AS SELECT sid, account, host(addr) AS ip, started FROM {s}.sessions",
]


@pytest.fixture
def agency(postgres_url: str) -> Iterator[str]:
    """An agency's own schema: a subscribers table, a sessions table and a view over it."""
    name = f"agency_{uuid.uuid4().hex[:10]}"
    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        for statement in _AGENCY_DDL:
            conn.execute(text(statement.format(s=name)))
    yield name
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
    engine.dispose()


def _subscribers(schema: str) -> TableMapping:
    return TableMapping(
        table=f"{schema}.subscribers",
        record_type="subscriber_account",
        record_id="id",
        observed_at="opened",
        fields={
            "account_id": "id",
            "username": "login",
            "email": "mail",
            "phone": "msisdn",
            "full_name": "holder",
            "created_at": "opened",
            "date_of_birth": "born",
            "subject_nationality": "citizenship",
            "subject_residence": "lives_in",
        },
        selectors=(
            SelectorColumn("mail", T.EMAIL),
            SelectorColumn("msisdn", T.PHONE),
            SelectorColumn("login", T.USERNAME, compare="lower"),
        ),
        dataset="agency",
        id_prefix="sub-",
    )


def _sessions(schema: str) -> TableMapping:
    return TableMapping(
        table=f"{schema}.session_view",
        record_type="ip_connection_log",
        record_id="sid",
        observed_at="started",
        fields={"account_id": "account", "ip_address": "ip", "connected_at": "started"},
        dataset="agency",
        id_prefix="ses-",
    )


@pytest.fixture
def source(agency: str, postgres_url: str) -> Iterator[MappedSource]:
    src = MappedSource(postgres_url, [_subscribers(agency), _sessions(agency)], schema=SCHEMA)
    yield src
    src.close()


def test_lookup_reads_the_mapped_columns(source: MappedSource) -> None:
    [alice] = source.lookup([Selector(T.EMAIL, "alice@example.org")])
    assert alice.record_id == "sub-1" and alice.record_type == "subscriber_account"
    assert alice.category is DataCategory.SUBSCRIBER and alice.dataset == "agency"
    assert alice.observed_at == datetime(2024, 1, 5, 10, tzinfo=UTC)
    assert alice.fields == {
        "account_id": "1",
        "username": "Alice",
        "email": "alice@example.org",
        "phone": "+14165550123",
        "full_name": "Alice A",
        "created_at": "2024-01-05T10:00:00Z",
        "date_of_birth": "1990-02-03",
        "subject_nationality": "CA",
        "subject_residence": "CA",
    }
    assert "internal_score" not in alice.fields  # unmapped columns never leave the table


def test_case_folded_selector_column_and_null_fields(source: MappedSource) -> None:
    [alice] = source.lookup([Selector(T.USERNAME, "alice")])
    assert alice.record_id == "sub-1"
    [bob] = source.lookup([Selector(T.PHONE, "+12125550188")])
    assert "date_of_birth" not in bob.fields
    assert bob.fields["created_at"] == "2024-02-29T19:00:00Z"


def test_view_selectors_default_from_the_schema_and_merge_in_time_order(source: MappedSource) -> None:
    sels = [Selector(T.ACCOUNT_ID, "ACC-1"), Selector(T.IP_ADDRESS, "192.0.2.9")]
    assert [r.record_id for r in source.lookup(sels)] == ["ses-s1", "ses-s2", "ses-s3"]
    [s2] = source.lookup([Selector(T.IP_ADDRESS, "2001:db8::1")])
    assert s2.fields == {
        "account_id": "ACC-1",
        "ip_address": "2001:db8::1",
        "connected_at": "2025-02-01T08:00:00Z",
    }
    mixed = [Selector(T.EMAIL, "bob@example.org"), Selector(T.ACCOUNT_ID, "ACC-2")]
    assert [r.record_id for r in source.lookup(mixed)] == ["sub-2", "ses-s3"]


def test_filters_limit_and_hit_check(source: MappedSource) -> None:
    sel = [Selector(T.ACCOUNT_ID, "ACC-1"), Selector(T.EMAIL, "alice@example.org")]
    assert [r.record_id for r in source.lookup(sel, categories={DataCategory.TRAFFIC})] == [
        "ses-s1",
        "ses-s2",
    ]
    window = TimeRange(datetime(2025, 1, 15, tzinfo=UTC), None)
    assert [r.record_id for r in source.lookup(sel, time_range=window)] == ["ses-s2"]
    stream = source.lookup(sel, limit=2)
    assert len(list(stream)) == 2 and stream.truncated
    assert source.hit_check(sel, categories={DataCategory.SUBSCRIBER})
    assert not source.hit_check(sel, categories={DataCategory.CONTENT})
    assert not source.hit_check([Selector(T.IMEI, "490154203237518")])  # no column of that type
    assert not source.hit_check([])


def test_mapped_records_minimise_like_stored_ones(source: MappedSource) -> None:
    records = list(source.lookup([Selector(T.EMAIL, "alice@example.org")]))
    [released] = minimise(records, schema=SCHEMA, categories={DataCategory.SUBSCRIBER})
    assert released.fields["email"] == "alice@example.org"


@pytest.mark.parametrize("value", ["x' OR '1'='1", "'; DROP TABLE subscribers; --", "%"])
def test_injection_values_are_data(source: MappedSource, value: str) -> None:
    for kind in SelectorType:
        assert list(source.lookup([Selector(kind, value)])) == []
    assert source.check().records == 5


def test_stats_and_check(source: MappedSource) -> None:
    counts = {(c.record_type, c.category): c.records for c in source.stats()}
    assert counts == {
        ("subscriber_account", DataCategory.SUBSCRIBER): 2,
        ("ip_connection_log", DataCategory.TRAFFIC): 3,
    }
    report = source.check()
    assert report.records == 5 and len(report.tables) == 2


def test_check_names_missing_columns_tables_and_indexes(agency: str, postgres_url: str) -> None:
    broken = TableMapping(
        table=f"{agency}.subscribers",
        record_type="subscriber_account",
        record_id="id",
        observed_at="opened",
        fields={"email": "e_mail"},
    )
    with pytest.raises(StoreNotReady, match="lacks column"):
        MappedSource(postgres_url, [broken], schema=SCHEMA).check()
    gone = TableMapping(
        table=f"{agency}.nothing",
        record_type="subscriber_account",
        record_id="id",
        observed_at="t",
        fields={},
    )
    with pytest.raises(StoreNotReady, match="does not exist"):
        MappedSource(postgres_url, [gone], schema=SCHEMA).check()
    unindexed = TableMapping(
        table=f"{agency}.subscribers",
        record_type="subscriber_account",
        record_id="id",
        observed_at="opened",
        fields={"full_name": "holder"},
        selectors=(SelectorColumn("holder", T.USERNAME),),
    )
    with pytest.raises(StoreNotReady, match="holder has no index"):
        MappedSource(postgres_url, [unindexed], schema=SCHEMA).check()
    # account_id is a selector field, and "id" an integer column: found before any lookup fails.
    integer = TableMapping(
        f"{agency}.subscribers", "subscriber_account", "id", "opened", {"account_id": "id"}
    )
    with pytest.raises(StoreNotReady, match=r"subscribers\.id is INTEGER, not text"):
        MappedSource(postgres_url, [integer], schema=SCHEMA).check()


def test_bad_mappings_are_config_errors(postgres_url: str) -> None:
    with pytest.raises(ConfigError, match="identifier"):
        TableMapping(
            table="x; DROP TABLE y",
            record_type="subscriber_account",
            record_id="id",
            observed_at="t",
            fields={},
        )
    with pytest.raises(ConfigError, match="not a field"):
        MappedSource(
            postgres_url, [TableMapping("t", "subscriber_account", "id", "t", {"shoe": "s"})], schema=SCHEMA
        )
    with pytest.raises(ConfigError, match="PostgreSQL only"):
        MappedSource("sqlite://", [TableMapping("t", "subscriber_account", "id", "t", {})], schema=SCHEMA)


def test_unreachable_database_is_unavailable() -> None:
    src = MappedSource(
        "postgresql://postgres@127.0.0.1:1/none",
        [TableMapping("t", "subscriber_account", "id", "t", {"email": "mail"})],
        schema=SCHEMA,
    )
    with pytest.raises(StoreUnavailable):
        src.hit_check([Selector(T.EMAIL, "a@example.org")])
    with pytest.raises(StoreUnavailable):
        src.check()


def test_subject_facts_are_read_from_the_mapped_columns(source: MappedSource) -> None:
    from comity.nodes.subjects import SubjectReader

    reader = SubjectReader(source, SCHEMA)
    facts = reader.facts([Selector(T.EMAIL, "bob@example.org")])
    assert facts.nationalities == {"US"} and facts.residences == {"CA"}


def test_a_null_country_column_is_unknown_and_an_unmapped_one_is_unreadable(
    source: MappedSource, agency: str, postgres_url: str
) -> None:
    from comity.nodes.subjects import SubjectFacts, SubjectFactsUnreadable, SubjectReader

    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE {agency}.subscribers SET citizenship = NULL, lives_in = NULL WHERE id = 2")
        )
    engine.dispose()
    reader = SubjectReader(source, SCHEMA)
    assert reader.facts([Selector(T.EMAIL, "bob@example.org")]) == SubjectFacts(records=1)
    # The sessions view maps no country column: the node cannot know whose sessions they are.
    with pytest.raises(SubjectFactsUnreadable):
        reader.facts([Selector(T.ACCOUNT_ID, "ACC-1")])


def test_a_dropped_country_column_is_unreadable(source: MappedSource, agency: str, postgres_url: str) -> None:
    from comity.nodes.subjects import SubjectFactsUnreadable, SubjectReader

    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {agency}.subscribers DROP COLUMN citizenship"))
    engine.dispose()
    with pytest.raises(SubjectFactsUnreadable):
        SubjectReader(source, SCHEMA).facts([Selector(T.EMAIL, "alice@example.org")])
