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

The endpoints follow the federation file: :meth:`GatewayLog.prepare` builds the channels of a
newly trusted version (a new one for each endpoint it adds or whose certificate pins change, the
others kept), and its swap makes the next call use them; a channel the version no longer lists
closes once the calls already using it have finished. The endpoint that answered last stays
first while the new version still lists it.
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


class _Route:
    """One endpoint's channel, with the calls using it (closed when retired and unused)."""

    def __init__(self, endpoint: str, key: tuple[object, ...], credentials: grpc.ChannelCredentials) -> None:
        self.endpoint = endpoint
        self.key = key
        self.channel = grpc.secure_channel(endpoint, credentials, options=channel_options())
        self.stub = pb_grpc.AuditLogStub(self.channel)
        self.users = 0
        self.retired = False


def _route_key(federation: Federation, endpoint: str) -> tuple[object, ...]:
    """What a channel to ``endpoint`` depends on: a change in any of it needs a new channel."""
    gateway = federation.gateway
    return (endpoint, gateway.tls_cert, gateway.server_pins, gateway.ca_cert)


class GatewayLog:
    """A client of the gateway's AuditLog service on every endpoint serving the log."""

    def __init__(self, federation: Federation, *, timeout: float = 5.0) -> None:
        credentials = investigator_channel_credentials(federation)
        self._routes = tuple(
            _Route(e, _route_key(federation, e), credentials) for e in federation.gateway.endpoints
        )
        self._timeout = timeout
        self._lock = threading.Lock()
        self._preferred = self._routes[0].endpoint  # the endpoint that answered last

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Where the log is asked, in the federation file's order."""
        return tuple(r.endpoint for r in self._routes)

    def prepare(self, federation: Federation) -> Callable[[], None]:
        """The channels for ``federation``'s gateway endpoints, and the swap that puts them in use.

        Reads the gateway's certificate (raising, to refuse the version, when it does not match
        its pins) only when a channel must be new; the swap itself cannot fail.
        """
        current = {r.key: r for r in self._routes}
        keys = [_route_key(federation, e) for e in federation.gateway.endpoints]
        credentials = (
            investigator_channel_credentials(federation) if any(k not in current for k in keys) else None
        )
        routes: list[_Route] = []
        for endpoint, key in zip(federation.gateway.endpoints, keys, strict=True):
            kept = current.get(key)
            if kept is None:
                assert credentials is not None
                kept = _Route(endpoint, key, credentials)
            routes.append(kept)
        new = tuple(routes)

        def swap() -> None:
            self._use(new)

        return swap

    def _use(self, routes: tuple[_Route, ...]) -> None:
        with self._lock:
            old, self._routes = self._routes, routes
            if self._preferred not in {r.endpoint for r in routes}:
                self._preferred = routes[0].endpoint
            idle = [r for r in old if r not in routes and self._retire(r)]
        for route in idle:
            route.channel.close()

    @staticmethod
    def _retire(route: _Route) -> bool:
        """Mark ``route`` retired; whether it is unused (to close now)."""
        route.retired = True
        return route.users == 0

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
        routes = self._acquire()
        try:
            return self._ask_on(routes, call, what, answer)
        finally:
            self._release(routes)

    def _acquire(self) -> list[_Route]:
        """The routes in use, the preferred one first, each counted as used by this call."""
        with self._lock:
            routes = list(self._routes)
            first = next((i for i, r in enumerate(routes) if r.endpoint == self._preferred), 0)
            for route in routes:
                route.users += 1
        return routes[first:] + routes[:first]

    def _release(self, routes: list[_Route]) -> None:
        with self._lock:
            idle = []
            for route in routes:
                route.users -= 1
                if route.retired and route.users == 0:
                    idle.append(route)
        for route in idle:
            route.channel.close()

    def _ask_on(self, routes: list[_Route], call: _Call, what: str, answer: type[T]) -> T:
        deadline = time.monotonic() + self._timeout
        # Fail fast first: a replica that is down answers UNAVAILABLE at once, the next is asked.
        for route in routes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                result = call(route.stub, remaining, False).result()
            except grpc.RpcError as exc:
                self._raise_unless_down(exc, what)
                continue
            self._prefer(route.endpoint)
            return _typed(result, answer)
        # None answered at once: every channel may be reconnecting; the first that is ready wins.
        remaining = deadline - time.monotonic()
        if remaining > 0:
            answers: queue.Queue[tuple[str, grpc.Future[object]]] = queue.Queue()
            futures: list[grpc.Future[object]] = []
            for route in routes:
                future = call(route.stub, remaining, True)
                future.add_done_callback(functools.partial(_answered, answers, route.endpoint))
                futures.append(future)
            try:
                for _ in futures:
                    try:
                        endpoint, future = answers.get(timeout=max(0.0, deadline - time.monotonic()) + 0.5)
                    except queue.Empty:
                        break
                    try:
                        result = future.result()
                    except grpc.RpcError as exc:
                        self._raise_unless_down(exc, what)
                        continue
                    self._prefer(endpoint)
                    return _typed(result, answer)
            finally:
                for future in futures:
                    future.cancel()
        where = ", ".join(r.endpoint for r in routes)
        raise Unavailable(
            f"cannot get {what} from the gateway's log: no endpoint answered ({where})",
            hint="start a gateway process serving the log, or check that the federation file lists "
            "the running ones (gateway endpoint and replica_endpoints)",
        )

    def _prefer(self, endpoint: str) -> None:
        with self._lock:
            self._preferred = endpoint

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
        """Close every channel (those of calls still running once they finish)."""
        with self._lock:
            idle = [r for r in self._routes if self._retire(r)]
        for route in idle:
            route.channel.close()


def _typed(result: object, answer: type[T]) -> T:
    if not isinstance(result, answer):
        raise Unavailable(f"the gateway's log answered with {type(result).__name__}, not {answer.__name__}")
    return result


def _answered(
    answers: queue.Queue[tuple[str, grpc.Future[object]]], endpoint: str, future: grpc.Future[object]
) -> None:
    answers.put((endpoint, future))
