"""The replay store, on SQLite and on PostgreSQL: a query id is accepted once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from comity.core.errors import ConfigError, InvalidArgument
from comity.core.replay import ReplayedQuery, ReplayStore

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'replay.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def table() -> str:
    return f"replay_{uuid.uuid4().hex[:16]}"


@pytest.fixture
def store(url: str, table: str) -> Iterator[ReplayStore]:
    s = ReplayStore(url, table=table)
    yield s
    s.drop()
    s.close()


def test_an_id_is_accepted_once(store: ReplayStore) -> None:
    store.record("q-1", NOW, now=NOW)
    store.record("q-2", NOW, now=NOW)
    with pytest.raises(ReplayedQuery, match="used before"):
        store.record("q-1", NOW, now=NOW + timedelta(seconds=1))


def test_seen_ids_survive_a_restart(store: ReplayStore, url: str, table: str) -> None:
    store.record("q-1", NOW, now=NOW)
    reopened = ReplayStore(url, table=table)
    try:
        with pytest.raises(ReplayedQuery):
            reopened.record("q-1", NOW, now=NOW)
    finally:
        reopened.close()


def test_concurrent_submissions_of_one_id_admit_exactly_one(store: ReplayStore, url: str, table: str) -> None:
    other = ReplayStore(url, table=table)  # a second gateway process on the same database

    def attempt(i: int) -> bool:
        try:
            (store if i % 2 else other).record("q-race", NOW, now=NOW)
        except ReplayedQuery:
            return False
        return True

    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            outcomes = list(pool.map(attempt, range(12)))
    finally:
        other.close()
    assert outcomes.count(True) == 1


def test_ids_older_than_the_retention_are_refused_and_pruned(store: ReplayStore) -> None:
    store.record("q-old", NOW, now=NOW)
    later = NOW + timedelta(minutes=10)
    with pytest.raises(ReplayedQuery, match="too long ago"):
        store.record("q-old", NOW, now=later)
    assert store.prune(now=later) == 1
    store.record("q-new", later, now=later)


async def test_record_async(store: ReplayStore) -> None:
    await store.record_async("q-a", NOW, now=NOW)
    with pytest.raises(ReplayedQuery):
        await store.record_async("q-a", NOW, now=NOW)


@pytest.mark.parametrize("bad", ["", "x" * 129])
def test_query_id_must_be_sane(tmp_path: Path, bad: str) -> None:
    store = ReplayStore(tmp_path / "r.db")
    with pytest.raises(InvalidArgument, match="query_id"):
        store.record(bad, NOW, now=NOW)


@pytest.mark.parametrize(("url", "table"), [("mysql://x/y", "t"), ("sqlite:///x.db", "Bad-Name; drop")])
def test_bad_configuration(url: str, table: str) -> None:
    with pytest.raises(ConfigError):
        ReplayStore(url, table=table)
