"""Failover across gateway replicas: after which failures a request is sent again, and where.

Several gateway processes may serve one federation's log. A client keeps one channel to each
address it was given and sends each request to the replica that answered last. A submission
is sent again, as a new query (a new query id and a fresh signature: a query id is accepted
once), through the next replica only when its failure shows that it was not decided there or
the gateway says that nothing was forwarded:

- ``UNAVAILABLE`` without Comity's status details (no ``grpc-status-details-bin`` trailer): gRPC's
  own failure, not the gateway's answer. The connection to that replica could not be made, or
  broke (the replica stopped, was killed, restarts). A connection that broke while the query was
  in flight may have left it decided, even forwarded, on that replica: its trail then ends in a
  ``failed`` entry, and the query sent again is a second query in the log.
- ``UNAVAILABLE`` from the gateway naming a check of :data:`NOTHING_FORWARDED`: refused before
  anything was decided or forwarded.

Anything else is an answer and ends the request: a refusal by the gateway's policy or a node
(``PERMISSION_DENIED``, ``INVALID_ARGUMENT``, ``FAILED_PRECONDITION``, ``RESOURCE_EXHAUSTED``,
...), a node that cannot be reached (another replica reaches the same node), and
``DEADLINE_EXCEEDED``: the caller's timeout is the whole request's, every attempt included, so
none is left for another one, and a query that ran out of time may have been decided and
forwarded.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc

from comity.core.errors import Attempt, ComityError, InvalidArgument, Unavailable
from comity.core.rpc import GRPC_DETAILS_KEY

__all__ = ["NOTHING_FORWARDED", "Failover", "Plan", "Replicas", "from_comity", "resubmit_reason"]

#: Check codes of ``UNAVAILABLE`` refusals made before a query was decided or forwarded.
NOTHING_FORWARDED = frozenset({"LOG_UNAVAILABLE", "REPLAY_UNAVAILABLE"})

# Below this much of the caller's deadline, another attempt could only miss it.
_MIN_ATTEMPT_SECONDS = 0.05
_DETAIL_CHARS = 160


@dataclass(frozen=True)
class Failover:
    """How often, and how soon, a request is sent again through another replica.

    ``resubmissions`` bounds the attempts after the first (0: never send again); before the
    n-th, the client waits ``backoff_seconds * 2**(n-1)``, at most ``max_backoff_seconds``,
    jittered down to half of it, and only when the caller's deadline leaves time for it.
    """

    resubmissions: int = 3
    backoff_seconds: float = 0.05
    max_backoff_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.resubmissions < 0 or self.backoff_seconds < 0 or self.max_backoff_seconds < 0:
            raise InvalidArgument("failover: resubmissions and backoff must not be negative")


def from_comity(trailing_metadata: object) -> bool:
    """Whether a failed call carries Comity's status details, i.e. the gateway itself answered."""
    pairs: Iterable[tuple[str, object]] = trailing_metadata or ()  # type: ignore[assignment]
    return any(key == GRPC_DETAILS_KEY for key, _ in pairs)


def resubmit_reason(exc: grpc.RpcError, err: ComityError) -> str | None:
    """Why the request that failed with ``exc`` (rebuilt as ``err``) may go to another replica,
    or None when the failure is an answer (see the module docstring)."""
    call: grpc.Call = exc  # type: ignore[assignment]
    if call.code() != grpc.StatusCode.UNAVAILABLE:
        return None
    if not from_comity(call.trailing_metadata()):
        return "the connection to this replica failed"
    checks = NOTHING_FORWARDED.intersection(err.check_codes)
    if checks:
        return f"refused before anything was forwarded ({', '.join(sorted(checks))})"
    return None


Stub = TypeVar("Stub")


class Replicas(Generic[Stub]):
    """One channel (made on first use) to each gateway address; the one that answered last first."""

    def __init__(self, addresses: Sequence[str], connect: Callable[[str], tuple[object, Stub]]) -> None:
        unique = tuple(dict.fromkeys(a.strip() for a in addresses if a.strip()))
        if not unique:
            raise InvalidArgument("a client needs at least one gateway address")
        self.addresses = unique
        self._connect = connect
        self._open: dict[str, tuple[object, Stub]] = {}
        self._lock = threading.Lock()  # a blocking client may be shared by threads: one channel each
        self._preferred = 0

    @property
    def preferred(self) -> str:
        """The address the next request goes to first."""
        return self.addresses[self._preferred]

    def order(self) -> tuple[str, ...]:
        """Every address, the preferred one first, then the others in their given order."""
        i = self._preferred
        return self.addresses[i:] + self.addresses[:i]

    def stub(self, address: str) -> Stub:
        """The stub on ``address``'s channel."""
        with self._lock:
            if address not in self._open:
                self._open[address] = self._connect(address)
            return self._open[address][1]

    def answered(self, address: str) -> None:
        """``address`` answered (a result or a refusal): prefer it."""
        self._preferred = self.addresses.index(address)

    def channels(self) -> list[object]:
        """The channels opened so far (for the client to close)."""
        with self._lock:
            return [channel for channel, _ in self._open.values()]


class Plan:
    """One request's attempts: where each goes, what is left of the deadline, whether another may go."""

    def __init__(
        self,
        order: Sequence[str],
        failover: Failover,
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._order = tuple(order)
        self._failover = failover
        self._clock = clock
        self._deadline = clock() + timeout
        self.attempts: list[Attempt] = []
        self._transport_details = ""

    @property
    def address(self) -> str:
        """Where the next attempt goes: each address in turn, from the preferred one."""
        return self._order[len(self.attempts) % len(self._order)]

    @property
    def first(self) -> bool:
        """Whether no attempt was made yet."""
        return not self.attempts

    def timeout(self) -> float:
        """What is left of the caller's deadline, for the next attempt."""
        return max(self._deadline - self._clock(), _MIN_ATTEMPT_SECONDS)

    def answered(self, query_id: str, address: str) -> tuple[Attempt, ...]:
        """Record the attempt that was answered; returns every attempt."""
        self.attempts.append(Attempt(query_id, address, "answered"))
        return tuple(self.attempts)

    def failed(self, query_id: str, address: str, exc: grpc.RpcError, err: ComityError) -> float | None:
        """Record a failed attempt; the wait before the next one, or None when the failure is an
        answer, or no attempt is left (the bound, or the deadline)."""
        call: grpc.Call = exc  # type: ignore[assignment]
        reason = resubmit_reason(exc, err)
        outcome = f"{call.code().name}: {reason or _short(err.message)}"
        self.attempts.append(Attempt(query_id, address, outcome))
        err.attempts = tuple(self.attempts)
        if reason is None:
            return None
        if not from_comity(call.trailing_metadata()):
            self._transport_details = _short(call.details() or "")
        n = len(self.attempts)
        if n > self._failover.resubmissions:
            return None
        delay = min(self._failover.backoff_seconds * 2.0 ** (n - 1), self._failover.max_backoff_seconds)
        delay *= random.uniform(0.5, 1.0)
        if self._deadline - self._clock() - delay < _MIN_ATTEMPT_SECONDS:
            return None
        return delay

    def final(self, err: ComityError) -> ComityError:
        """The error the caller gets for the request's last failure ``err`` (already recorded).

        An answer is passed on as it is (its :attr:`~ComityError.attempts` set). When the
        replicas never answered, the error names each address tried, each attempt's query id
        and how it failed."""
        last = self.attempts[-1]
        if not last.outcome.startswith("UNAVAILABLE: the connection"):
            return err
        tried = "; ".join(f"{a.address} ({_label(a)}{a.outcome.split(': ', 1)[1]})" for a in self.attempts)
        count = len(self.attempts)
        plural = "s" if count > 1 else ""
        hint = "check that the gateway is running and reachable at these addresses"
        if self._transport_details:
            hint += f" (the last connection error: {self._transport_details})"
        final = Unavailable(f"no gateway replica answered {count} attempt{plural}: {tried}", hint=hint)
        final.attempts = tuple(self.attempts)
        return final


def _label(attempt: Attempt) -> str:
    return f"query {attempt.query_id}: " if attempt.query_id else ""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"
