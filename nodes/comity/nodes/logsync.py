"""The gateway's log as the node reads it: consistency proofs and its own newest cosigned checkpoint.

Concurrent queries reach a node in any order, each carrying the checkpoint that was newest when
the gateway forwarded it, so the witness may already have accepted a newer checkpoint than the
one a query brings, or an older one than the gateway assumed. The gateway is then told the
witness's size and forwards again with the right proof (see ``report_witness_size``); when it
asks the node to fetch instead, only the log can give the proof. The witness verifies every
proof it is handed, so asking the gateway's public AuditLog service requires no trust in the
answer, and any gateway process serving the log may answer.

The log is reached through every endpoint the federation file lists for the gateway
(``endpoint``, then ``replica_endpoints``): the one that answered last first, then the others
failing fast, and when none answers at once, all of them waiting for readiness (a restarting
replica's channel is in reconnect backoff) until the deadline. A stopped replica therefore costs
a fast failure on one channel, never a failed query while another replica is up.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import grpc

from comity.core.errors import NotFound, Unavailable
from comity.core.federation import Federation
from comity.core.grpcopts import channel_options
from comity.core.tls import investigator_channel_credentials
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["GatewayLog"]

T = TypeVar("T")

#: One call on one endpoint: (stub, timeout, wait_for_ready) → the call's future.
_Call = Callable[[pb_grpc.AuditLogStub, float, bool], "grpc.Future[object]"]

# Statuses that say this endpoint is not serving now (another one may be): anything else is the
# log's own answer, the same from every replica.
_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


class GatewayLog:
    """A client of the gateway's AuditLog service on every endpoint serving the log."""

    def __init__(self, federation: Federation, *, timeout: float = 5.0) -> None:
        credentials = investigator_channel_credentials(federation)
        self._endpoints = federation.gateway.endpoints
        self._channels = [
            grpc.secure_channel(e, credentials, options=channel_options()) for e in self._endpoints
        ]
        self._stubs = [pb_grpc.AuditLogStub(c) for c in self._channels]
        self._timeout = timeout
        self._lock = threading.Lock()
        self._preferred = 0  # the endpoint that answered last

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Where the log is asked, in the federation file's order."""
        return self._endpoints

    def consistency(self, first: int, second: int) -> list[bytes]:
        """The log's proof that the tree of size ``first`` is a prefix of the one of size ``second``."""
        request = pb.GetConsistencyProofRequest(first_size=first, second_size=second)
        proof = self._ask(
            lambda stub, timeout, ready: stub.GetConsistencyProof.future(
                request, timeout=timeout, wait_for_ready=ready
            ),
            "a consistency proof",
            pb.ConsistencyProof,
        )
        return list(proof.hashes)

    def cosigned_by(self, witness_id: str) -> pb.CheckpointResponse:
        """The newest checkpoint the log holds with a cosignature of ``witness_id``.

        Raises :class:`NotFound` when the log holds none, :class:`Unavailable` when no
        endpoint answers within the deadline.
        """
        request = pb.GetCheckpointRequest(cosigned_by=witness_id)
        return self._ask(
            lambda stub, timeout, ready: stub.GetCheckpoint.future(
                request, timeout=timeout, wait_for_ready=ready
            ),
            "checkpoint cosigned by this witness",
            pb.CheckpointResponse,
        )

    def _ask(self, call: _Call, what: str, answer: type[T]) -> T:
        deadline = time.monotonic() + self._timeout
        with self._lock:
            first = self._preferred
        order = [(first + i) % len(self._stubs) for i in range(len(self._stubs))]
        # Fail fast first: a replica that is down answers UNAVAILABLE at once, the next is asked.
        for i in order:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                result = call(self._stubs[i], remaining, False).result()
            except grpc.RpcError as exc:
                self._raise_unless_down(exc, what)
                continue
            self._prefer(i)
            return _typed(result, answer)
        # None answered at once: every channel may be reconnecting; the first that is ready wins.
        remaining = deadline - time.monotonic()
        if remaining > 0:
            answers: queue.Queue[tuple[int, grpc.Future[object]]] = queue.Queue()
            futures: list[grpc.Future[object]] = []
            for i in order:
                future = call(self._stubs[i], remaining, True)
                future.add_done_callback(functools.partial(_answered, answers, i))
                futures.append(future)
            try:
                for _ in futures:
                    try:
                        i, future = answers.get(timeout=max(0.0, deadline - time.monotonic()) + 0.5)
                    except queue.Empty:
                        break
                    try:
                        result = future.result()
                    except grpc.RpcError as exc:
                        self._raise_unless_down(exc, what)
                        continue
                    self._prefer(i)
                    return _typed(result, answer)
            finally:
                for future in futures:
                    future.cancel()
        where = ", ".join(self._endpoints)
        raise Unavailable(
            f"cannot get {what} from the gateway's log: no endpoint answered ({where})",
            hint="start a gateway process serving the log, or check that the federation file lists "
            "the running ones (gateway endpoint and replica_endpoints)",
        )

    def _prefer(self, index: int) -> None:
        with self._lock:
            self._preferred = index

    @staticmethod
    def _raise_unless_down(exc: grpc.RpcError, what: str) -> None:
        call: grpc.Call = exc  # type: ignore[assignment]
        code = call.code()
        if code in _DOWN:
            return
        if code == grpc.StatusCode.NOT_FOUND:
            raise NotFound(f"the gateway's log holds no {what}") from None
        raise Unavailable(f"the gateway's log refused to give {what}: {code.name}") from None

    def close(self) -> None:
        """Close every channel."""
        for channel in self._channels:
            channel.close()


def _typed(result: object, answer: type[T]) -> T:
    if not isinstance(result, answer):
        raise Unavailable(f"the gateway's log answered with {type(result).__name__}, not {answer.__name__}")
    return result


def _answered(
    answers: queue.Queue[tuple[int, grpc.Future[object]]], index: int, future: grpc.Future[object]
) -> None:
    answers.put((index, future))
