"""Per-investigator and per-agency daily query counters, for the quota rules.

The gateway counts for the agreement's quotas and each node for its own inbound ones.
Counters are kept per UTC day in the process. They restart at zero when it restarts; the
transparency log keeps the durable record of every query, and a restart within a day
therefore allows at most one extra day's quota — an accepted trade-off against a database
write on every request.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date, datetime

from comity.policy.wire import Counters

__all__ = ["QuotaCounters"]


class QuotaCounters:
    """Counts queries that reached a policy decision, by investigator and by agency, per UTC day."""

    def __init__(self) -> None:
        self._day: date | None = None
        self._investigators: Counter[str] = Counter()
        self._agencies: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _roll(self, now: datetime) -> None:
        today = now.date()
        if today != self._day:
            self._day = today
            self._investigators.clear()
            self._agencies.clear()

    def before(self, investigator: str, agency: str, *, now: datetime) -> Counters:
        """The counts before this query, for the policy's facts."""
        with self._lock:
            self._roll(now)
            return Counters(
                investigator_today=self._investigators[investigator], agency_today=self._agencies[agency]
            )

    def count(self, investigator: str, agency: str, *, now: datetime) -> None:
        """Count one decided query."""
        with self._lock:
            self._roll(now)
            self._investigators[investigator] += 1
            self._agencies[agency] += 1
