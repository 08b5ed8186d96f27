"""Today's quota counts, rebuilt from the transparency log when the gateway starts.

The counters live in memory (a database write per request would cost more than the quota is
worth), but every decided query is already a ``decision`` entry in the log. Reading today's
entries back at start-up means a restart does not hand anyone a fresh day's quota.

The log is read from its end, a page at a time, until a whole page lies before today (UTC).
Entries are appended in time order up to the group-commit batching, so a small margin before
midnight is read as well.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from comity.audit.errors import InvalidEntry
from comity.audit.events import DecisionEvent, decode_event
from comity.core.errors import FailedPrecondition
from comity.gateway.ledger import Ledger
from comity.policy.quotas import QuotaCounters

__all__ = ["restore_quotas"]

PAGE = 1000
MARGIN = timedelta(minutes=5)


async def restore_quotas(ledger: Ledger, quotas: QuotaCounters, *, now: datetime) -> int:
    """Count today's decided queries from the log into ``quotas``; returns how many were counted.

    Raises :class:`FailedPrecondition` if an entry cannot be read: counting fewer than were
    made would let a quota be exceeded, so the gateway must not start on a guess.
    """
    midnight = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
    end = await ledger.tree_size()
    counted = 0
    while end > 0:
        start = max(0, end - PAGE)
        oldest = now
        for offset, entry in enumerate(await ledger.entries(start, end)):
            try:
                event = decode_event(entry)
            except InvalidEntry as exc:
                raise FailedPrecondition(
                    f"cannot rebuild today's quota counts: log entry {start + offset}: {exc.message}",
                    hint="run 'comity audit verify' on the log before starting the gateway",
                ) from None
            at = datetime.fromisoformat(event.at.replace("Z", "+00:00"))
            oldest = min(oldest, at)
            if isinstance(event, DecisionEvent) and midnight <= at <= now:
                quotas.count(event.investigator, event.agency, now=at)
                counted += 1
        if oldest < midnight - MARGIN:
            break
        end = start
    return counted
