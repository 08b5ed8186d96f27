"""Which PostgreSQL settings a replicated gateway accepts for its log database (no server)."""

from __future__ import annotations

import pytest

from comity.core.errors import ConfigError
from comity.gateway.replication import check_synchronous, require_replicated


@pytest.mark.parametrize("commit", ["on", "remote_write", "remote_apply"])
def test_commits_that_wait_for_a_named_standby_pass(commit: str) -> None:
    check_synchronous(commit, "FIRST 1 (standby1, standby2)")


@pytest.mark.parametrize(
    ("commit", "standbys", "named"),
    [
        ("on", "", "synchronous_standby_names is empty"),
        ("on", "   ", "synchronous_standby_names is empty"),
        ("local", "standby1", "synchronous_commit is 'local'"),
        ("off", "ANY 1 (a, b)", "synchronous_commit is 'off'"),
    ],
)
def test_asynchronous_settings_are_refused_by_name(commit: str, standbys: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named) as refused:
        check_synchronous(commit, standbys)
    assert "allow_asynchronous_replication" in (refused.value.hint or "")


@pytest.mark.parametrize("field", ["audit.url", "replay.url"])
def test_sqlite_is_refused_when_replicated(field: str, tmp_path: object) -> None:
    sqlite, postgres = "sqlite:////tmp/audit.db", "postgresql://nobody@127.0.0.1:1/none"
    urls = (sqlite, postgres) if field == "audit.url" else (postgres, sqlite)
    # Even with the override: an SQLite log cannot be shared at all.
    with pytest.raises(ConfigError, match=f"{field} is an SQLite file") as refused:
        require_replicated(*urls, allow_asynchronous=True)
    assert "postgresql://" in (refused.value.hint or "")
