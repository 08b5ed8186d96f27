"""Shared fixtures."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from comity.audit.store import LogStore

# Every policy decision in the tests (and in the servers they start) is also evaluated with the
# Cedar schema and compared with the evaluation without it (comity.policy.engine).
os.environ.setdefault("COMITY_POLICY_SCHEMA_EVERY", "1")

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT.parent / "shared" / "vectors"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of a reachable PostgreSQL server; skip (outside CI) when there is none."""
    url = os.environ.get("COMITY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            pass
    except Exception as exc:
        if os.environ.get("COMITY_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"no PostgreSQL reachable at {url} ({exc}); set COMITY_TEST_POSTGRES_URL")
    return url


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
