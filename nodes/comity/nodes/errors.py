"""The data node's errors, each a subclass of the shared tree in :mod:`comity.core.errors`.

Messages name what is wrong (which selector, which line, which table) and never repeat a
selector value or a store password.
"""

from __future__ import annotations

from dataclasses import dataclass

from comity.core.errors import FailedPrecondition, InvalidArgument, Unavailable
from comity.core.selectors import InvalidSelector

__all__ = [
    "InvalidRecord",
    "InvalidSelector",
    "LoadRejected",
    "RowError",
    "StoreNotReady",
    "StoreUnavailable",
]


class InvalidRecord(InvalidArgument):
    """A record does not match the dataset's schema; names the record and field."""

    def __init__(self, message: str, *, field: str = "", hint: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message, hint=hint)
        self.field = field


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one input row was refused: 1-based line number (CSV: counting the header) and reason."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class LoadRejected(InvalidArgument):
    """An input file had bad rows, so nothing from it was committed; ``errors`` lists them."""

    def __init__(self, source: str, errors: list[RowError], *, shown: int = 20) -> None:
        lines = [f"{source}: {len(errors)} bad row(s); nothing was loaded"]
        lines += [f"  {e}" for e in errors[:shown]]
        if len(errors) > shown:
            lines.append(f"  ... and {len(errors) - shown} more")
        super().__init__(
            "\n".join(lines),
            hint=(
                "fix the rows, or load with --skip-bad (skip_bad=True in Python) to write them "
                "to a reject file"
            ),
        )
        self.source = source
        self.errors = errors


class StoreUnavailable(Unavailable):
    """The record store cannot be reached or opened."""


class StoreNotReady(FailedPrecondition):
    """The store is reachable but its tables or indexes are missing."""
