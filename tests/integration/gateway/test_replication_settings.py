"""A replicated gateway's start-up check against the real local PostgreSQL server.

The server has no standby, so its ``synchronous_standby_names`` is empty: the check refuses,
and the override lets it start. ``synchronous_commit`` is set on a database of this test's
own (``ALTER DATABASE``), so the server's settings are left alone.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from comity.core.errors import ConfigError
from comity.gateway.replication import _settings, require_replicated


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    name = f"comity_sync_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
        db.execute(f"ALTER DATABASE {name} SET synchronous_commit = 'local'")
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_the_settings_are_read_on_the_gateway_s_own_session(database: str) -> None:
    commit, standbys = _settings(database)
    assert commit == "local"  # the database's own setting, not the server's default
    assert standbys == ""


def test_a_log_database_without_a_synchronous_standby_is_refused(database: str) -> None:
    with pytest.raises(ConfigError, match="synchronous_standby_names is empty"):
        require_replicated(database, database, allow_asynchronous=False)


def test_the_override_starts_anyway_and_says_so(database: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="comity.gateway.replication"):
        require_replicated(database, database, allow_asynchronous=True)
    assert "allow_asynchronous_replication" in caplog.text
    assert "synchronous_standby_names is empty" in caplog.text


def test_an_unreachable_database_is_refused_in_words() -> None:
    with pytest.raises(ConfigError, match="cannot read the log database's replication settings"):
        require_replicated(
            "postgresql://nobody@127.0.0.1:1/none",
            "postgresql://nobody@127.0.0.1:1/none",
            allow_asynchronous=True,
        )
