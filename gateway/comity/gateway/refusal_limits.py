"""Rate limits on refusals before policy, so a flood of bad requests leaves a bounded trail.

Every refusal of a registered investigator's request is logged, which makes the log a target:
signed garbage, sent fast, would become one entry each. Refusals found before policy (a bad
signature, an undecodable payload, a replay, an expired order, ...) therefore count against a
limit per investigator first and per agency after it, in fixed windows:

- an investigator's refusals count towards their own limit; only those inside it count
  towards their agency's, so one investigator cannot exhaust the agency's allowance;
- once the investigator (or their agency) is at its limit, every further request of theirs in
  that window is refused with RESOURCE_EXHAUSTED (``RATE_LIMITED_INVESTIGATOR`` or
  ``RATE_LIMITED_AGENCY``) before any other check, and is not logged on its own;
- each window with such requests leaves one ``throttled`` entry: how many, per requester, and
  the RFC 6962 Merkle tree hash over their payload digests in arrival order.

So a window logs at most ``per_agency`` refusals per agency plus one aggregate entry per
gateway process. The counts that bind are kept beside the log (``comity.audit.refusal_counts``),
one for every gateway process over it: each refusal is counted in its own entry's transaction,
and a refusal whose requester is at a limit there is not logged but throttled. This process's
counters are its view of them, exact for a single process; a replica learns that a requester
is at a limit reached through another replica at the first refusal of theirs it tries to log
(until then it still checks and serves their other requests).
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc

from comity.audit.refusal_counts import OVER_AGENCY, RefusalCount
from comity.audit.tree import CompactRange
from comity.core import refusals
from comity.core.errors import ComityError

__all__ = ["RefusalLimiter", "RefusalLimits", "Throttled"]

_BASIS = "Prüm Decision 2008/615 (daily capacities); 18 U.S.C. §2523(b)(4)(D)(ii)"
refusals.register(
    refusals.Check(
        "RATE_LIMITED_INVESTIGATOR",
        "PARTICULARITY",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "too many refused requests from this investigator ({limit} in {window}s); wait {wait}s and "
        "fix the requests before sending more",
        _BASIS,
    ),
    refusals.Check(
        "RATE_LIMITED_AGENCY",
        "PARTICULARITY",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "too many refused requests from this agency ({limit} in {window}s); wait {wait}s",
        _BASIS,
    ),
)


@dataclass(frozen=True)
class RefusalLimits:
    """Refusals before policy allowed per window, per investigator and per agency."""

    window: timedelta = timedelta(seconds=60)
    per_investigator: int = 20
    per_agency: int = 100


@dataclass(frozen=True)
class Throttled:
    """One closed window's requests refused past a limit: what its ``throttled`` entry says."""

    window_start: datetime
    window_end: datetime
    count: int
    requests_root: bytes
    by_requester: tuple[tuple[str, str, int], ...]


def _leaf(digest: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + digest).digest()


class RefusalLimiter:
    """Counts refusals before policy in fixed windows and refuses requesters over their limit."""

    def __init__(self, limits: RefusalLimits = RefusalLimits()) -> None:
        self._limits = limits
        self._window = int(limits.window.total_seconds())
        if self._window < 1 or limits.per_investigator < 1 or limits.per_agency < 1:
            raise ValueError("refusal limits must be positive")
        self._index = -1
        self._investigators: Counter[str] = Counter()
        self._agencies: Counter[str] = Counter()
        self._throttled: Counter[tuple[str, str]] = Counter()
        self._digests = CompactRange()
        self._closed: list[Throttled] = []
        self._lock = threading.Lock()

    def _roll(self, now: datetime, *, final: bool = False) -> None:
        index = int(now.timestamp()) // self._window + (1 if final else 0)
        if index <= self._index:
            return
        if self._throttled:
            start = datetime.fromtimestamp(self._index * self._window, UTC)
            self._closed.append(
                Throttled(
                    window_start=start,
                    window_end=start + timedelta(seconds=self._window),
                    count=self._digests.size,
                    requests_root=self._digests.root(),
                    by_requester=tuple((i, a, n) for (i, a), n in sorted(self._throttled.items())),
                )
            )
        self._index = index
        self._investigators.clear()
        self._agencies.clear()
        self._throttled.clear()
        self._digests = CompactRange()

    def admit(self, investigator: str, agency: str, request_digest: bytes, *, now: datetime) -> None:
        """Raise RESOURCE_EXHAUSTED (and count the request) if the requester is over a limit."""
        with self._lock:
            self._roll(now)
            if self._investigators[investigator] >= self._limits.per_investigator:
                error = self._throttle(investigator, agency, request_digest, "RATE_LIMITED_INVESTIGATOR", now)
            elif self._agencies[agency] >= self._limits.per_agency:
                error = self._throttle(investigator, agency, request_digest, "RATE_LIMITED_AGENCY", now)
            else:
                return
        raise error

    def counted(self, investigator: str, agency: str, *, now: datetime, enforce: bool = True) -> RefusalCount:
        """What a refusal's entry counts in the log's transaction (see ``comity.audit.refusal_counts``)."""
        return RefusalCount(
            int(now.timestamp()) // self._window,
            investigator,
            agency,
            self._limits.per_investigator,
            self._limits.per_agency,
            enforce,
        )

    def over(
        self, investigator: str, agency: str, request_digest: bytes, why: str, *, now: datetime
    ) -> ComityError:
        """The log found the requester at a limit (``why``: which one): remember it, count the
        request into the window's aggregate entry, and return the refusal to send."""
        with self._lock:
            self._roll(now)
            if why == OVER_AGENCY:
                self._agencies[agency] = max(self._agencies[agency], self._limits.per_agency)
                return self._throttle(investigator, agency, request_digest, "RATE_LIMITED_AGENCY", now)
            self._investigators[investigator] = max(
                self._investigators[investigator], self._limits.per_investigator
            )
            return self._throttle(investigator, agency, request_digest, "RATE_LIMITED_INVESTIGATOR", now)

    def _throttle(
        self, investigator: str, agency: str, request_digest: bytes, code: str, now: datetime
    ) -> ComityError:
        """Count one throttled request into the window's aggregate (under the lock)."""
        wait = (self._index + 1) * self._window - int(now.timestamp())
        limit = (
            self._limits.per_investigator if code == "RATE_LIMITED_INVESTIGATOR" else self._limits.per_agency
        )
        self._throttled[(investigator, agency)] += 1
        self._digests.append(_leaf(request_digest))
        return refusals.refuse(code, limit=limit, window=self._window, wait=wait)

    def refused(self, investigator: str, agency: str, *, now: datetime) -> None:
        """Count one refusal before policy (it was logged on its own)."""
        with self._lock:
            self._roll(now)
            self._investigators[investigator] += 1
            if self._investigators[investigator] <= self._limits.per_investigator:
                self._agencies[agency] += 1

    def closed(self, *, now: datetime, final: bool = False) -> list[Throttled]:
        """The windows ended by ``now`` that throttled requests, oldest first, to log
        (``final``: the current window too, as if it had ended)."""
        with self._lock:
            self._roll(now, final=final)
            return list(self._closed)

    def logged(self, throttled: Throttled) -> None:
        """Forget a window whose entry is in the log."""
        with self._lock:
            self._closed.remove(throttled)
