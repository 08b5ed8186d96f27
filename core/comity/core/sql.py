"""Database URLs: one reading of ``sqlite:///`` and ``postgresql://`` for every component.

The node store, the audit log and the replay store each tune their own engines (pragmas,
isolation, pools); what a URL means, which driver serves it, and how a bad one is reported are
the same everywhere, so they live here.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from comity.core.errors import ConfigError

__all__ = ["parse_database_url"]

_POSTGRES = ("postgresql", "postgres", "postgresql+psycopg")


def parse_database_url(url: str | Path, *, field: str) -> URL:
    """The SQLAlchemy URL for a SQLite path, ``sqlite:///PATH`` or ``postgresql://...`` (psycopg 3).

    ``field`` names the configuration setting in errors (e.g. ``audit.url``).
    """
    text = str(url)
    if "://" not in text:  # a bare file path means SQLite
        return URL.create("sqlite", database=text)
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise ConfigError("not a valid database URL", field=field) from None
    if parsed.drivername in _POSTGRES:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise ConfigError(
        f"unsupported database URL scheme {parsed.drivername!r}",
        field=field,
        hint="use sqlite:///PATH or postgresql://USER@HOST/DB",
    )
