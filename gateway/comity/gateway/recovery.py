"""Recovery: after a crash of the gateway, a node or the log database, the trail is completed.

Two things can be left unfinished, and each is kept durably until it is finished:

* **A node's signed decision or statement not in the log.** Nodes keep what they signed in
  an outbox (``comity.nodes.outbox``). :meth:`Recovery.reconcile` lists each node's
  unacknowledged items, appends the ``node_decision`` entry of each one the log lacks (found by
  its leaf hash: the entry is a pure function of the signed bytes), and acknowledges them. A
  node refusal closes its query's pending marker.
* **An allowed decision with nothing after it.** The decision opened a pending marker in its
  own transaction (``comity.audit.pending``). :meth:`Recovery.sweep` first reconciles the
  marker's node (its signed refusal, if any, ends the query), then closes every marker older
  than the grace period with a ``failed`` entry, reason ``INCOMPLETE``: the gateway returned
  nothing to the requester (so the decision's quota count is given back). That entry says only
  what the gateway knows, so it never contradicts a node statement that reaches the log later
  (the node may have answered a gateway that crashed before it could log the disclosure).

Both run soon after start-up and then on a timer (:class:`RecoveryLoop`). Markers this process opened
and is still working on are left alone; others wait for the grace period (longer than any
forwarded query can take), so a replica sharing the database is not overtaken.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import datetime, timedelta

from comity.core.errors import ComityError
from comity.core.tasks import cancel_and_wait
from comity.gateway.ledger import Ledger
from comity.gateway.node_decisions import NodeDecisionLog, SignedNodeDecision
from comity.gateway.routing import NodeRouter

__all__ = ["INCOMPLETE", "Recovery", "RecoveryLoop"]

_log = logging.getLogger("comity.gateway.recovery")

#: The failure reason of an allowed decision that recovery ended: nothing reached the requester.
INCOMPLETE = "INCOMPLETE"
_PAGE = 200
#: Seconds after start-up before the first round (or one interval, if shorter).
_FIRST_ROUND = 1.0


class Recovery:
    """Reconciles nodes' outboxes with the log, and ends abandoned allowed decisions."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        router: NodeRouter,
        node_decisions: NodeDecisionLog,
        nodes: Iterable[str] | Callable[[], Iterable[str]],
        grace: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._ledger = ledger
        self._router = router
        self._decisions = node_decisions
        # A callable is asked at every sweep (the nodes of the federation version in use).
        self._nodes = nodes if callable(nodes) else tuple(nodes)
        self._grace = grace
        self._clock = clock
        self._lock = asyncio.Lock()

    async def reconcile(self, node: str, *, in_flight: Collection[bytes] = ()) -> int:
        """Append what ``node``'s outbox holds and the log lacks, then acknowledge; returns how many
        entries were appended. Raises a :class:`ComityError` when the node or the log fails.

        ``in_flight``: digests of queries whose pending marker some gateway process opened within
        the grace period; their own requests log what the node signed, so it is left for them.
        """
        appended, after = 0, 0
        while True:
            items = await self._router.outbox(node, after=after, limit=_PAGE)
            logged: list[int] = []
            checked: list[tuple[int, SignedNodeDecision]] = []
            for item in items:
                after = max(after, item.sequence)
                try:
                    signed = self._decisions.verify(
                        item.node_decision,
                        node=node,
                        statement=item.node_statement if item.HasField("node_statement") else None,
                    )
                except ComityError as exc:  # kept at the node, and reported, never logged as its word
                    _log.error("node %s outbox item %d does not check: %s", node, item.sequence, exc.message)
                    continue
                digest = signed.decision.query_digest
                if digest in in_flight or self._ledger.in_flight(digest, within=self._grace.total_seconds()):
                    continue  # the query's own request, in this replica or another, is about to log it
                checked.append((item.sequence, signed))
            # One look-up for the page: most items were logged by their own queries.
            held = await self._ledger.log.contained([signed.entry() for _, signed in checked])
            recorded: set[bytes] = set()
            for (sequence, signed), in_log in zip(checked, held, strict=True):
                entry = signed.entry()
                if not in_log and entry not in recorded:
                    await self._decisions.record(signed, closes=not signed.allowed)
                    recorded.add(entry)
                    appended += 1
                logged.append(sequence)
            if logged:
                await self._router.acknowledge(node, logged)
            if len(items) < _PAGE:
                return appended

    async def sweep(self) -> tuple[int, int]:
        """Reconcile every node, then end abandoned markers; returns (node entries, failures)."""
        async with self._lock:
            recovered = 0
            # Over one database, the replicas' queries in flight are known by their markers: a
            # replica that logged another's node decision first would have it logged twice.
            try:
                in_flight = await self._in_flight()
            except ComityError as exc:
                _log.warning("outboxes not reconciled yet: %s", exc.message)
            else:
                for node in self._nodes() if callable(self._nodes) else self._nodes:
                    try:
                        recovered += await self.reconcile(node, in_flight=in_flight)
                    except ComityError as exc:
                        _log.warning("node %s outbox not reconciled yet: %s", node, exc.message)
            failed = await self._end_abandoned()
        if recovered or failed:
            _log.info(
                "recovery: %d node decision(s) appended, %d query(ies) ended as failed", recovered, failed
            )
        return recovered, failed

    async def _in_flight(self) -> set[bytes]:
        horizon = (self._clock() - self._grace).timestamp()
        markers = await self._ledger.log.pending_markers()
        return {m.query_digest for m in markers if m.opened_at > horizon}

    async def _end_abandoned(self) -> int:
        now = self._clock()
        horizon = (now - self._grace).timestamp()
        failed = 0
        for marker in await self._ledger.log.pending_markers():
            if marker.opened_at > horizon:
                continue
            if self._ledger.in_flight(marker.query_digest, within=10 * self._grace.total_seconds()):
                continue
            decision = b""
            if marker.decision_index >= 0:
                decision = (await self._ledger.entries(marker.decision_index, marker.decision_index + 1))[0]
            await self._ledger.record_failure_event(
                query_id=marker.query_id,
                query_digest=marker.query_digest,
                node=marker.node,
                reason=INCOMPLETE,
                at=now,
                decision=decision,
            )
            failed += 1
        return failed


class RecoveryLoop:
    """Runs :meth:`Recovery.sweep` (and other housekeeping) every ``interval`` seconds."""

    def __init__(
        self, recovery: Recovery, *, interval: float, also: Iterable[Callable[[], Awaitable[object]]] = ()
    ) -> None:
        self._recovery = recovery
        self._interval = interval
        self._also = tuple(also)
        self._task: asyncio.Task[None] | None = None

    async def once(self) -> None:
        """One round; a log that cannot be written yet is tried again next round."""
        for job in (*self._also, self._recovery.sweep):
            try:
                await job()
            except ComityError as exc:
                _log.warning("recovery round incomplete, retried in %.1fs: %s", self._interval, exc.message)

    def start(self) -> None:
        """Start the timer."""
        self._task = asyncio.create_task(self._run(), name="recovery")

    async def _run(self) -> None:
        # The first round soon after start-up, not before serving: calling a node that is not
        # up yet would put its channel into reconnect back-off for the first queries.
        await asyncio.sleep(min(self._interval, _FIRST_ROUND))
        while True:
            await self.once()
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        """Stop the timer (and wait for a round in progress to end)."""
        await cancel_and_wait(self._task)
        self._task = None
