"""What every record source offers the node: exact lookups, hit checks, stats and a health check.

:class:`~comity.nodes.store.RecordStore` (records loaded into SQLite or PostgreSQL) and
:class:`~comity.nodes.mapped.MappedSource` (an agency's existing PostgreSQL table) both follow
:class:`RecordSource`, so the node's server does not care which one it has.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol

from comity.core.errors import InvalidArgument
from comity.nodes.schema import DataCategory, Record, Selector

__all__ = [
    "MAX_LOOKUP_SELECTORS",
    "CategoryCount",
    "CheckReport",
    "RecordSource",
    "RecordStream",
    "TimeRange",
    "check_selector_count",
]


#: The most selectors one lookup takes. Policy allows far fewer; this bound keeps every
#: backend's statement limits (SQLite: 500 terms in a compound SELECT) out of reach.
MAX_LOOKUP_SELECTORS = 256


def check_selector_count(selectors: Sequence[Selector]) -> None:
    """Refuse a lookup with more than :data:`MAX_LOOKUP_SELECTORS` selectors."""
    if len(selectors) > MAX_LOOKUP_SELECTORS:
        raise InvalidArgument(
            f"{len(selectors)} selectors in one lookup; at most {MAX_LOOKUP_SELECTORS}",
            hint="a lawful query names a few exact selectors",
        )


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Records observed from ``start`` to ``end``, both inclusive; None leaves that side open.

    Both ends must be timezone-aware.
    """

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            t = getattr(self, name)
            if t is not None and t.tzinfo is None:
                raise InvalidArgument(f"time range {name} must carry a time zone", hint="use UTC")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise InvalidArgument("time range starts after it ends")

    def contains(self, t: datetime) -> bool:
        """Whether ``t`` lies within the range."""
        return (self.start is None or t >= self.start) and (self.end is None or t <= self.end)


def to_micros(t: datetime) -> int:
    """Microseconds since the Unix epoch (the stores' time column)."""
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    """Inverse of :func:`to_micros`."""
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


class RecordStream:
    """The records a lookup matched, produced lazily, in (observed_at, record_id) order.

    Iterate it (or call :meth:`batches`) once. It holds a database connection until exhausted
    or closed, so use it as a context manager. After exhaustion, :attr:`truncated` says whether
    the limit cut the answer short.
    """

    def __init__(self, rows: Iterator[Record], limit: int | None, on_close: Callable[[], None]) -> None:
        self._rows = rows
        self._limit = limit
        self._on_close = on_close
        self._closed = False
        self.truncated = False
        self.count = 0

    def __iter__(self) -> Iterator[Record]:
        try:
            for record in self._rows:
                if self._limit is not None and self.count >= self._limit:
                    self.truncated = True
                    break
                self.count += 1
                yield record
        finally:
            self.close()

    def batches(self, size: int) -> Iterator[list[Record]]:
        """The records in lists of at most ``size``, for streaming in chunks."""
        if size < 1:
            raise InvalidArgument("batch size must be at least 1")
        batch: list[Record] = []
        for record in self:
            batch.append(record)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def close(self) -> None:
        """Release the connection; safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._on_close()

    def __enter__(self) -> RecordStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class CategoryCount:
    """How many records of a dataset fall in a data category (``comity node stats``)."""

    dataset: str
    category: DataCategory
    record_type: str
    records: int


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What :meth:`RecordSource.check` verified (it raises when anything is missing)."""

    backend: str
    location: str
    tables: tuple[str, ...]
    indexes: tuple[str, ...]
    records: int


class RecordSource(Protocol):
    """The lookup interface the node's server uses."""

    def lookup(
        self,
        selectors: Sequence[Selector],
        *,
        categories: Collection[DataCategory] | None = None,
        time_range: TimeRange | None = None,
        limit: int | None = None,
    ) -> RecordStream:
        """Records matching any of ``selectors`` (exact, normalised values)."""
        ...

    def hit_check(
        self,
        selectors: Sequence[Selector],
        *,
        categories: Collection[DataCategory] | None = None,
        time_range: TimeRange | None = None,
    ) -> bool:
        """Whether any record matches, without reading one."""
        ...

    def stats(self) -> list[CategoryCount]:
        """Record counts per dataset, category and record type."""
        ...

    def check(self) -> CheckReport:
        """Raise StoreUnavailable or StoreNotReady unless the source is reachable and complete."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
