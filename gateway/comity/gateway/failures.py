"""Failure entries for allowed queries that could not be completed, even while the log is down.

An allowed decision is in the log before anything is forwarded. If the query then cannot be
completed (the node is down, refuses, or the log fails before the disclosure is appended),
the trail must end in a ``failed`` entry. When the log itself is what failed, that entry is
kept here, in the gateway's memory, and appended by :meth:`FailureRecorder.retry` (run on the
gateway's housekeeping timer) as soon as the log is writable again, with the time the failure
happened. A gateway that stops before then loses what is kept here: that case is crash
recovery's, which reconciles the log after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from comity.core.errors import ComityError
from comity.gateway.ledger import Ledger, Logged
from comity.v1 import comity_pb2 as pb

__all__ = ["FailureRecorder"]

_log = logging.getLogger("comity.gateway.failures")


@dataclass(frozen=True)
class _Failure:
    query: pb.Query
    query_digest: bytes
    node: str
    reason: str
    at: datetime
    decision: bytes


class FailureRecorder:
    """Appends failure entries; keeps those the log refused and appends them later, in order."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._pending: list[_Failure] = []
        self._lock = asyncio.Lock()

    @property
    def pending(self) -> int:
        """Failure entries waiting for the log to be writable again."""
        return len(self._pending)

    async def record(
        self,
        query: pb.Query,
        query_digest: bytes,
        *,
        node: str,
        reason: str,
        at: datetime,
        decision: bytes = b"",
    ) -> Logged | None:
        """Append a failure entry now, or keep it for :meth:`retry`; returns its entry when it is
        in the log now (None when it waits for the log). ``decision`` is the query's decision
        entry (see :meth:`Ledger.record_failure`).

        Never raises: the caller is already answering with the error that caused the failure.
        """
        failure = _Failure(query, query_digest, node, reason, at, decision)
        if self._pending:  # keep the order: earlier failures go first
            self._pending.append(failure)
            await self.retry()
            return None
        logged = await self._append(failure)
        if logged is None:
            self._pending.append(failure)
        return logged

    async def retry(self) -> int:
        """Append kept failure entries, oldest first, until one fails; returns how many went in."""
        appended = 0
        async with self._lock:
            while self._pending:
                if await self._append(self._pending[0]) is None:
                    break
                self._pending.pop(0)
                appended += 1
        if appended:
            _log.info("appended %d failure entr(ies) kept while the log was down", appended)
        return appended

    async def _append(self, failure: _Failure) -> Logged | None:
        try:
            return await self._ledger.record_failure(
                failure.query,
                failure.query_digest,
                node=failure.node,
                reason=failure.reason,
                at=failure.at,
                decision=failure.decision,
            )
        except ComityError as exc:
            _log.error(
                "query %s: its failure entry cannot be appended yet (%s); kept for a retry",
                failure.query.query_id,
                exc.message,
            )
            return None
