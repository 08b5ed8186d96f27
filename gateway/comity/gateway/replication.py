"""Start-up checks for a gateway that runs replicated (``[replication] replicated = true``).

Replicas share one log database, so it must be one every replica reaches and that survives a
replica: PostgreSQL, not an SQLite file (one writer process, and in a container a file that
goes with its pod); the replay store too (a query id must be seen once by all replicas).

The database itself must not lose what it committed when it fails over. With asynchronous
replication a promoted standby can lack the log's last committed batches: the entries the
gateway writes next take their places with other contents, and every witness that cosigned
the lost tail sees a fork and refuses the log from then on. So the gateway reads, on its own
session to the log database, ``synchronous_standby_names`` (a standby must confirm each commit)
and ``synchronous_commit`` (this session's commits must wait for it: ``on``, ``remote_write`` or
``remote_apply``), and refuses to start otherwise, unless ``allow_asynchronous_replication``
says the operator accepts the risk (a single PostgreSQL server with no standby at all, for
trying replicas out, needs it too).
"""

from __future__ import annotations

import logging

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from comity.core.errors import ConfigError
from comity.core.sql import parse_database_url

__all__ = ["SYNCHRONOUS_COMMITS", "check_synchronous", "require_replicated"]

_log = logging.getLogger("comity.gateway.replication")

#: ``synchronous_commit`` values under which a commit waits for a synchronous standby.
SYNCHRONOUS_COMMITS = frozenset({"on", "remote_write", "remote_apply"})

_OVERRIDE = "set replication.allow_asynchronous_replication = true to start anyway (unsafe)"


def check_synchronous(synchronous_commit: str, synchronous_standby_names: str) -> None:
    """Raise :class:`ConfigError` unless these settings make every commit wait for a standby."""
    if not synchronous_standby_names.strip():
        raise ConfigError(
            "the log database is not replicated synchronously: synchronous_standby_names is empty, "
            "so a failover can lose committed log entries and every witness would then see a fork",
            hint="name the synchronous standbys (synchronous_standby_names, or your operator's "
            f"synchronous replication setting), or {_OVERRIDE}",
        )
    if synchronous_commit not in SYNCHRONOUS_COMMITS:
        raise ConfigError(
            f"the log database's synchronous_commit is {synchronous_commit!r} for the gateway's role: "
            "its commits do not wait for the synchronous standby, so a failover can lose committed "
            "log entries",
            hint=f"set synchronous_commit to on (ALTER ROLE ... SET synchronous_commit = on), or {_OVERRIDE}",
        )


def require_replicated(audit_url: str, replay_url: str, *, allow_asynchronous: bool) -> None:
    """Refuse (:class:`ConfigError`) a replicated gateway on SQLite or on a database whose
    commits do not wait for a synchronous standby (see the module docstring)."""
    for field, url in (("audit.url", audit_url), ("replay.url", replay_url)):
        if parse_database_url(url, field=field).drivername.startswith("sqlite"):
            raise ConfigError(
                f"{field} is an SQLite file, but replication.replicated is true: replicas need one "
                "PostgreSQL database they all reach (an SQLite log has one writer process, and a "
                "container's file is lost with its pod)",
                hint=f"set {field} (or its COMITY_*_URL variable) to a postgresql:// URL, or set "
                "replicated = false to run one gateway process",
            )
    settings = _settings(audit_url)
    try:
        check_synchronous(*settings)
    except ConfigError as exc:
        if not allow_asynchronous:
            raise
        _log.warning("starting anyway (allow_asynchronous_replication): %s", exc.message)


def _settings(url: str) -> tuple[str, str]:
    """``(synchronous_commit, synchronous_standby_names)`` as the gateway's own session sees them."""
    parsed = parse_database_url(url, field="audit.url")
    engine = create_engine(parsed.render_as_string(hide_password=False), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            commit = conn.execute(text("SELECT current_setting('synchronous_commit')")).scalar_one()
            names = conn.execute(text("SELECT current_setting('synchronous_standby_names')")).scalar_one()
    except SQLAlchemyError as exc:
        raise ConfigError(
            "cannot read the log database's replication settings: it is unreachable or refused "
            "the connection",
            hint="check audit.url and that the database is up",
        ) from exc
    finally:
        engine.dispose()
    return str(commit), str(names)
