"""Per-investigator and per-agency daily query counters, for the quota rules.

The gateway counts for the agreement's quotas and each node for its own inbound ones.
Counters are kept per UTC day in the process, not written per request. The gateway reads
today's decisions back from its transparency log when it starts
(:mod:`comity.gateway.quota_state`), so a restart changes nothing. A node keeps no log of its
own: its inbound counters restart at zero with the node, and the gateway's counts, which see
every query first, remain the binding ones.
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
