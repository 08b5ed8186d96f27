"""This process's guess of today's quota counts, so that most decisions are made once.

The counts that bind are in the log database, checked and counted in each decision entry's
own transaction (``comity.audit.shared_state``): a decision made on counts that moved since is
made again there, on the database's counts. This cache only keeps that second decision rare.
It reserves a count for each query being decided here (concurrent queries of one investigator
expect consecutive counts, as they will be appended) and learns the database's count from each
decision logged. Counts grow within a day except when a failure gives one back, so what it
learns is kept as a maximum and lowered by the failures this process logs (a count given back
through another replica only costs the next decision here a second policy evaluation).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime

from comity.policy.wire import Counters

__all__ = ["QuotaCache"]


class QuotaCache:
    """Expected counts of decisions per investigator and agency per UTC day (a guess, see above)."""

    def __init__(self) -> None:
        self._known: Counter[tuple[str, str, str]] = Counter()
        self._reserved: Counter[tuple[str, str, str]] = Counter()
        self._day = ""
        self._lock = threading.Lock()

    @staticmethod
    def _keys(investigator: str, agency: str, day: str) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
        return (day, "i", investigator), (day, "a", agency)

    def _roll(self, day: str) -> None:
        if day > self._day:
            self._day = day
            for counter in (self._known, self._reserved):
                for key in [k for k in counter if k[0] < day]:
                    del counter[key]

    def reserve(self, investigator: str, agency: str, *, now: datetime) -> tuple[str, Counters]:
        """The expected counts before this query, reserved until :meth:`settle`; returns its day too."""
        day = now.astimezone(UTC).date().isoformat()
        with self._lock:
            self._roll(day)
            i, a = self._keys(investigator, agency, day)
            counters = Counters(self._known[i] + self._reserved[i], self._known[a] + self._reserved[a])
            self._reserved[i] += 1
            self._reserved[a] += 1
        return day, counters

    def settle(self, investigator: str, agency: str, day: str, used: Counters | None) -> None:
        """End a reservation: ``used`` are the counts the logged decision was made on (None: not logged)."""
        with self._lock:
            for key, n in zip(
                self._keys(investigator, agency, day),
                (None, None) if used is None else (used.investigator_today, used.agency_today),
                strict=True,
            ):
                if self._reserved[key] > 0:
                    self._reserved[key] -= 1
                if n is not None and key[0] >= self._day:
                    self._known[key] = max(self._known[key], n + 1)

    def release(self, investigator: str, agency: str, day: str) -> None:
        """A failure logged here gave back one count of ``day``'s."""
        with self._lock:
            for key in self._keys(investigator, agency, day):
                if self._known[key] > 0:
                    self._known[key] -= 1
