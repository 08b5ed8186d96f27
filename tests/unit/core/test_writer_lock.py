"""The single-writer lock of SQLite stores."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from comity.core.errors import ConfigError
from comity.core.writer_lock import lock_sqlite_writer


def test_the_lock_is_exclusive_until_released(tmp_path: Path) -> None:
    url = make_url(f"sqlite:///{tmp_path / 'audit.db'}")
    first = lock_sqlite_writer(url, what="the audit log", field="audit.url")
    assert first is not None
    with pytest.raises(ConfigError, match="already open for writing"):
        lock_sqlite_writer(url, what="the audit log", field="audit.url")
    first.release()
    again = lock_sqlite_writer(url, what="the audit log", field="audit.url")
    assert again is not None
    again.release()


def test_postgresql_stores_take_no_lock() -> None:
    url = make_url("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    assert lock_sqlite_writer(url, what="the audit log", field="audit.url") is None
