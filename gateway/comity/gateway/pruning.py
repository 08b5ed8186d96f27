"""Retention pruning on a timer, by the replica that leads (``comity.gateway.leadership``).

What ``comity audit prune`` does once (``comity.audit.retention``), the gateway can do every
``interval`` seconds: delete the selector openings and justification signatures of decisions
older than the retention period, except those of orders under a legal hold. Only the leader
prunes, so replicas over one database do not scan the log side by side; a pass that fails
(the database is down, an unreadable entry) is logged and tried again at the next interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from comity.audit.retention import RetentionReport, prune_openings
from comity.audit.store import LogStore
from comity.core.errors import ComityError
from comity.core.tasks import cancel_and_wait
from comity.gateway.leadership import Leadership

__all__ = ["Pruning"]

_log = logging.getLogger("comity.gateway.pruning")


class Pruning:
    """Prunes past retention every ``interval`` seconds while this process leads."""

    def __init__(
        self,
        store: LogStore,
        leadership: Leadership,
        *,
        period: timedelta,
        interval: float,
        hold_orders: Collection[str] = (),
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._leadership = leadership
        self._period = period
        self._interval = interval
        self._holds = frozenset(hold_orders)
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def prune(self) -> RetentionReport | None:
        """One pass if this process leads (None when it stands by); blocking."""
        if not self._leadership.leading:
            return None
        report = prune_openings(self._store, cutoff=self._clock() - self._period, hold_orders=self._holds)
        if report.decisions_pruned or report.signatures_deleted:
            _log.info(
                "retention: deleted the openings of %d decision(s) and %d justification signature(s)",
                report.decisions_pruned,
                report.signatures_deleted,
            )
        return report

    def start(self) -> None:
        """Prune every ``interval`` seconds in the background, the first time after one interval."""
        self._task = asyncio.create_task(self._run(), name="gateway-pruning")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await asyncio.to_thread(self.prune)
            except ComityError as exc:
                _log.error("retention pruning failed: %s", exc.message)
            except Exception:  # never let one bad pass end pruning
                _log.exception("retention pruning failed")

    async def stop(self) -> None:
        """Stop pruning (a pass under way finishes in its thread)."""
        await cancel_and_wait(self._task)
        self._task = None
