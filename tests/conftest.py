"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
