"""Log databases for the audit tests: a SQLite file, and PostgreSQL under a unique table prefix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from comity.audit.store import LogStore


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``(url, table prefix)`` of an empty log database; PostgreSQL tables are dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}", "audit_"
        return
    url: str = request.getfixturevalue("postgres_url")
    prefix = f"t{uuid.uuid4().hex[:12]}_"
    yield url, prefix
    store = LogStore.open(url, table_prefix=prefix, create=False)
    store.drop()
    store.close()
