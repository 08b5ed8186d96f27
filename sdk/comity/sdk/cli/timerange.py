"""Time ranges typed on the command line: ISO 8601, UTC unless a zone is given, whole days inclusive.

A legal officer's report must not depend on the machine it runs on, so a time without a zone is
UTC, never the local zone. A date alone means the whole day: ``--since 2026-06-01 --until
2026-06-30`` covers June, the 30th included.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import typer

__all__ = ["TimeRange", "parse_range"]

_EXAMPLES = "e.g. 2026-06-30, 2026-06-30T14:00 (UTC) or 2026-06-30T14:00+02:00"


@dataclass(frozen=True, slots=True)
class TimeRange:
    """``[since, until)``; either end may be open (None)."""

    since: datetime | None
    until: datetime | None

    def holds(self, when: datetime) -> bool:
        """Whether ``when`` lies in the range."""
        return (self.since is None or when >= self.since) and (self.until is None or when < self.until)


def _parse(text: str, option: str, *, end: bool) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 date or time ({_EXAMPLES})", param_hint=option
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    # An end given as a time is inclusive: the instant itself is in the range.
    return value + timedelta(microseconds=1) if end else value


def parse_range(since: str | None, until: str | None) -> TimeRange:
    """The range the options ``--since`` and ``--until`` give; refuses a reversed range."""
    start = _parse(since, "--since", end=False) if since else None
    stop = _parse(until, "--until", end=True) if until else None
    if start is not None and stop is not None and stop <= start:
        raise typer.BadParameter(
            f"--until ({until}) is before --since ({since}): the range is empty", param_hint="--until"
        )
    return TimeRange(start, stop)
