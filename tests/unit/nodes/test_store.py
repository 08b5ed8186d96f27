"""The record store, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from comity.core.errors import InvalidArgument
from comity.nodes.errors import InvalidRecord, StoreNotReady, StoreUnavailable
from comity.nodes.ingest import load_records
from comity.nodes.lookup import MAX_LOOKUP_SELECTORS, TimeRange
from comity.nodes.schema import DataCategory, Record, Selector, SelectorType
from comity.nodes.store import RecordStore
from comity.nodes.synthetic import generate

StoreFactory = Callable[..., RecordStore]

EMAIL = SelectorType.EMAIL
ACCOUNT = SelectorType.ACCOUNT_ID


def _at(day: int) -> datetime:
    return datetime(2025, 3, day, 12, tzinfo=UTC)


def _account(rid: str, email: str, day: int = 1, dataset: str = "d") -> Record:
    fields = {"account_id": rid.upper(), "email": email, "provider": "p", "full_name": "n"}
    return Record(rid, "subscriber_account", DataCategory.SUBSCRIBER, _at(day), fields, dataset)


def _connection(rid: str, account: str, day: int) -> Record:
    fields = {"account_id": account, "ip_address": "192.0.2.1"}
    return Record(rid, "ip_connection_log", DataCategory.TRAFFIC, _at(day), fields, "d")


def test_lookup_finds_exactly_the_matching_records(store: RecordStore) -> None:
    store.put([_account("a1", "x@example.org"), _account("a2", "y@example.org"), _connection("c1", "A1", 2)])
    found = list(store.lookup([Selector(EMAIL, "x@example.org")]))
    assert [r.record_id for r in found] == ["a1"]
    assert found[0].fields["email"] == "x@example.org"
    assert found[0].observed_at == _at(1)
    assert found[0].dataset == "d"
    by_account = store.lookup([Selector(ACCOUNT, "A1")])
    assert [r.record_id for r in by_account] == ["a1", "c1"]


def test_several_selectors_match_each_record_once(store: RecordStore) -> None:
    store.put([_account("a1", "x@example.org"), _connection("c1", "A1", 2)])
    sels = [Selector(EMAIL, "x@example.org"), Selector(ACCOUNT, "A1")]
    assert [r.record_id for r in store.lookup(sels)] == ["a1", "c1"]


def test_no_match_and_no_selectors_return_nothing(store: RecordStore) -> None:
    store.put([_account("a1", "x@example.org")])
    assert list(store.lookup([Selector(EMAIL, "nobody@example.org")])) == []
    assert list(store.lookup([])) == []
    assert not store.hit_check([])
    assert not store.hit_check([Selector(EMAIL, "nobody@example.org")])
    # Same value, other type: no match.
    assert not store.hit_check([Selector(SelectorType.USERNAME, "x@example.org")])


def test_categories_and_time_range_filter(store: RecordStore) -> None:
    store.put([_account("a1", "x@example.org", day=1)] + [_connection(f"c{d}", "A1", d) for d in (2, 5, 9)])
    sel = [Selector(ACCOUNT, "A1")]
    traffic = store.lookup(sel, categories={DataCategory.TRAFFIC})
    assert [r.record_id for r in traffic] == ["c2", "c5", "c9"]
    window = store.lookup(sel, time_range=TimeRange(_at(2), _at(5)))
    assert [r.record_id for r in window] == ["c2", "c5"]  # both ends inclusive
    assert list(store.lookup(sel, categories=set())) == []
    assert store.hit_check(sel, categories={DataCategory.SUBSCRIBER})
    assert not store.hit_check(sel, categories={DataCategory.CONTENT})
    assert not store.hit_check(sel, time_range=TimeRange(_at(10), None))


def test_limit_caps_and_reports_truncation(store: RecordStore) -> None:
    store.put([_connection(f"c{d}", "A1", d) for d in range(1, 8)])
    sel = [Selector(ACCOUNT, "A1")]
    with store.lookup(sel, limit=3) as stream:
        assert [r.record_id for r in stream] == ["c1", "c2", "c3"]
    assert stream.truncated
    exact = store.lookup(sel, limit=7)
    assert len(list(exact)) == 7
    assert not exact.truncated


def test_batches_stream_in_chunks(store: RecordStore) -> None:
    store.put([_connection(f"c{d:02d}", "A1", d) for d in range(1, 12)])
    sizes = [len(b) for b in store.lookup([Selector(ACCOUNT, "A1")]).batches(4)]
    assert sizes == [4, 4, 3]


def test_abandoned_stream_releases_its_connection(store: RecordStore) -> None:
    store.put([_connection(f"c{d}", "A1", d) for d in range(1, 6)])
    for _ in range(30):  # more than any pool holds: a leak would block or fail
        stream = store.lookup([Selector(ACCOUNT, "A1")])
        next(iter(stream))
        stream.close()
    assert store.hit_check([Selector(ACCOUNT, "A1")])


def test_reputting_a_record_replaces_it_and_its_index(store: RecordStore) -> None:
    assert store.put([_account("a1", "old@example.org")]) == 0
    assert store.put([_account("a1", "new@example.org")]) == 1
    assert not store.hit_check([Selector(EMAIL, "old@example.org")])
    [record] = store.lookup([Selector(EMAIL, "new@example.org")])
    assert record.fields["email"] == "new@example.org"
    assert store.get("a1") == record
    assert store.get("missing") is None


def test_a_failed_write_commits_nothing(store: RecordStore) -> None:
    bad = Record("z", "no_such_type", DataCategory.SUBSCRIBER, _at(1), {}, "d")
    with pytest.raises(InvalidRecord, match="record_type"):
        store.put([_account("a1", "x@example.org"), bad])
    assert store.get("a1") is None


def test_stats_count_per_dataset_category_and_type(store: RecordStore) -> None:
    store.put([_account("a1", "x@example.org"), _account("b1", "y@example.org", dataset="e")])
    store.put([_connection("c1", "A1", 1), _connection("c2", "A1", 2)])
    counts = {(c.dataset, c.category, c.record_type): c.records for c in store.stats()}
    assert counts == {
        ("d", DataCategory.SUBSCRIBER, "subscriber_account"): 1,
        ("e", DataCategory.SUBSCRIBER, "subscriber_account"): 1,
        ("d", DataCategory.TRAFFIC, "ip_connection_log"): 2,
    }


def test_check_reports_tables_and_indexes(store: RecordStore) -> None:
    store.put([_account("a1", "x@example.org")])
    report = store.check()
    assert report.records == 1
    assert report.tables == (f"{store.prefix}records", f"{store.prefix}selectors")
    assert f"{store.prefix}selectors_record" in report.indexes


def test_check_names_missing_tables_and_indexes(store: RecordStore, store_url: str) -> None:
    url = store_url.replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(url if "://" in url else f"sqlite:///{url}")
    with engine.begin() as conn:
        conn.execute(text(f"DROP INDEX {store.prefix}selectors_record"))
    with pytest.raises(StoreNotReady, match="selectors_record"):
        store.check()
    store.drop()
    with pytest.raises(StoreNotReady, match="lacks table"):
        store.check()
    with pytest.raises(StoreNotReady):
        store.hit_check([Selector(EMAIL, "x@example.org")])
    engine.dispose()


def test_synthetic_data_loads_and_is_found(store: RecordStore) -> None:
    data = generate("US", 12, 9)
    report = load_records(store, data.records, dataset="us", region="US")
    assert report.loaded == len(data.records)
    person = data.well_known[1]
    hits = list(store.lookup([Selector(EMAIL, person.selectors[EMAIL])]))
    assert {r.record_type for r in hits} >= {"subscriber_account", "message_metadata", "message_content"}
    [account] = [r for r in hits if r.record_type == "subscriber_account"]
    assert account.fields["subject_nationality"] == person.nationality
    assert account.fields["subject_residence"] == person.residence


INJECTIONS = [
    "x' OR '1'='1",
    "x'; DROP TABLE comity_records; --",
    "' UNION SELECT record_id, dataset, record_type, category, observed_at, fields FROM comity_records --",
    "%",
    "*",
    "\\'",
    "x" * 5000,
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_raw_lookup_with_injection_values_is_data_not_code(make_store: StoreFactory, value: str) -> None:
    store = make_store()
    store.put([_account("a1", "x@example.org"), _connection("c1", "A1", 2)])
    for kind in SelectorType:
        assert list(store.lookup([Selector(kind, value)])) == []
        assert not store.hit_check([Selector(kind, value)])
    assert store.check().records == 2
    assert len(list(store.lookup([Selector(ACCOUNT, "A1")]))) == 2


def test_unreachable_postgres_is_unavailable() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(StoreUnavailable, match="the database is unreachable") as caught:
        RecordStore("postgresql://comity:secret@127.0.0.1:1/none")
    # Neither the URL nor the driver's class names reach the caller.
    assert "secret" not in str(caught.value) and "127.0.0.1" not in str(caught.value)
    assert "Error" not in str(caught.value)


def test_unopenable_sqlite_is_unavailable() -> None:
    with pytest.raises(StoreUnavailable):
        RecordStore("/nonexistent-dir/for/sure/records.db")


def test_lost_database_after_open_is_unavailable() -> None:
    store = RecordStore("postgresql://postgres@127.0.0.1:1/none", create=False)
    with pytest.raises(StoreUnavailable):
        store.hit_check([Selector(EMAIL, "x@example.org")])
    with pytest.raises(StoreUnavailable):
        list(store.lookup([Selector(EMAIL, "x@example.org")]))
    with pytest.raises(StoreUnavailable):
        store.check()


def test_analyze_refreshes_statistics_without_changing_answers(store: RecordStore) -> None:
    store.put([_account("a1", "x@example.org"), _connection("c1", "A1", 2)])
    store.analyze()
    assert [r.record_id for r in store.lookup([Selector(ACCOUNT, "A1")])] == ["a1", "c1"]


def test_small_fetches_return_everything_in_order(make_store: StoreFactory) -> None:
    store = make_store(fetch_size=2)
    store.put([_connection(f"c{d}", "A1", d) for d in (5, 1, 4, 2, 3, 7, 6)])
    with store.lookup([Selector(ACCOUNT, "A1")]) as stream:
        assert [r.record_id for r in stream] == [f"c{d}" for d in range(1, 8)]


def test_concurrent_lookups_from_threads(store: RecordStore) -> None:
    store.put([_connection(f"c{d}", f"A{d % 3}", d) for d in range(1, 22)])

    def work(i: int) -> list[str]:
        out = []
        for _ in range(10):
            out = [r.record_id for r in store.lookup([Selector(ACCOUNT, f"A{i % 3}")], limit=5)]
            assert store.hit_check([Selector(ACCOUNT, f"A{i % 3}")])
        return out

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(work, range(12)))
    assert all(len(a) == 5 for a in answers)
    assert answers[0] == answers[3] == ["c3", "c6", "c9", "c12", "c15"]


def test_many_selectors_work_up_to_the_bound(store: RecordStore) -> None:
    store.put([_connection("c1", "A255", 1)])
    many = [Selector(ACCOUNT, f"A{i}") for i in range(MAX_LOOKUP_SELECTORS)]
    assert [r.record_id for r in store.lookup(many)] == ["c1"]
    assert store.hit_check(many)
    too_many = [*many, Selector(ACCOUNT, "B")]
    with pytest.raises(InvalidArgument, match="at most"):
        store.lookup(too_many)
    with pytest.raises(InvalidArgument, match="at most"):
        store.hit_check(too_many)
