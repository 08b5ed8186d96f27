"""Record stores for the node tests: every store test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from comity.nodes.schema import Schema
from comity.nodes.store import RecordStore

StoreFactory = Callable[..., RecordStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file in tmp_path, or the test PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "records.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def make_store(store_url: str) -> Iterator[StoreFactory]:
    """Open stores with a table prefix of their own (tests share one PostgreSQL database); drop them after."""
    opened: list[RecordStore] = []

    def make(schema: Schema | None = None, fetch_size: int = 500) -> RecordStore:
        prefix = f"t{uuid.uuid4().hex[:12]}_"
        store = RecordStore(store_url, schema=schema, table_prefix=prefix, fetch_size=fetch_size)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.drop()
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> RecordStore:
    """One empty store with the default schema."""
    return make_store()
