"""Why a database operation failed, in words an operator and a caller can act on.

A failed write must say why (the disk is full, the database is unreachable) without handing
the caller a database URL, a driver's exception class or its message, which can name hosts,
files and users. :func:`describe_failure` maps what SQLAlchemy, sqlite3 and psycopg raise to
one short phrase; the full exception goes to the server's log only.
"""

from __future__ import annotations

import errno

__all__ = ["describe_failure"]

DISK_FULL = "the database's disk is full"
UNREACHABLE = "the database is unreachable"
READ_ONLY = "the database is read-only"
LOCKED = "the database is locked by another process"
IO_ERROR = "the database's disk reported an I/O error"
UNKNOWN = "the database refused the operation"

# PostgreSQL SQLSTATE classes and codes (Appendix A of its manual).
_SQLSTATE: tuple[tuple[str, str], ...] = (
    ("53100", DISK_FULL),  # disk_full
    ("53", DISK_FULL),  # insufficient resources (out of memory, too many connections are 53200/53300)
    ("08", UNREACHABLE),  # connection exceptions
    ("57P", UNREACHABLE),  # operator intervention: shutdown, crash, cannot connect now
    ("25006", READ_ONLY),  # read_only_sql_transaction
    ("58030", IO_ERROR),  # io_error
    ("55P03", LOCKED),  # lock_not_available
)

# sqlite3 reports its failures in the message only.
_SQLITE: tuple[tuple[str, str], ...] = (
    ("database or disk is full", DISK_FULL),
    ("unable to open database", UNREACHABLE),
    ("readonly database", READ_ONLY),
    ("database is locked", LOCKED),
    ("disk i/o error", IO_ERROR),
)

_UNREACHABLE_WORDS = ("connection refused", "could not connect", "server closed", "connection", "timeout")


def describe_failure(exc: BaseException) -> str:
    """One phrase for why ``exc`` (a SQLAlchemy, DB-API or OS error) happened; never a name or URL."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        phrase = _classify(current)
        if phrase:
            return phrase
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return UNKNOWN


def _classify(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DISK_FULL
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES):
        return READ_ONLY
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(state, str) and state:
        for prefix, phrase in _SQLSTATE:
            if state.startswith(prefix):
                return phrase
    text = str(exc).lower()
    for words, phrase in _SQLITE:
        if words in text:
            return phrase
    name = type(exc).__name__
    if name in ("OperationalError", "InterfaceError", "DisconnectionError", "TimeoutError") and any(
        w in text for w in _UNREACHABLE_WORDS
    ):
        return UNREACHABLE
    return ""
