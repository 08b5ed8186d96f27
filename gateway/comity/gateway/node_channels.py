"""The gateway's channels to the data nodes: connected before a call is sent, replaced when the
federation file moves a node.

**Connected before sending.** A node that restarts leaves its channel between two connection
attempts for up to a second (``comity.core.grpcopts``), and a fail-fast call on such a channel
fails at once with ``UNAVAILABLE``. A call with gRPC's ``wait_for_ready`` would wait, but its
``DEADLINE_EXCEEDED`` would then mean either "never connected" or "ran slowly", and only the first
may give an investigator's daily count back (the node may have run a slow query). So a call first
waits for its node's channel to connect, for at most :data:`CONNECT_SHARE` of its deadline, and
is sent (fail-fast, with what is left of the deadline) only once the channel is ready. A node not
reached in that time gets nothing: the call ends with ``UNAVAILABLE`` saying so.

**Following the federation file.** :class:`NodeChannels` holds one immutable mapping from node id
to its channel; a new federation version builds the next mapping beside it and replaces it in one
assignment, so a call sees either the old set or the new one, never a mix. A node whose endpoint,
certificate name or trusted certificates changed gets a new channel; the old one is closed once the
calls sent on it have ended (each is bounded by its deadline). A call that was waiting for a channel
that was replaced meanwhile starts again on the new one, so nothing goes to an endpoint the file no
longer names.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import grpc

from comity.core import refusals
from comity.core.errors import ComityError, NotFound, Unavailable
from comity.core.federation import Federation, Node
from comity.core.grpcopts import DEFAULT_MAX_MESSAGE_BYTES, channel_options
from comity.core.rpc_telemetry import client_interceptors
from comity.core.tls import read_pinned_certificate
from comity.core.tls_reload import GatewayClientTls
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = [
    "CONNECT_SHARE",
    "Credentials",
    "NodeChannel",
    "NodeChannels",
    "NodeEndpoint",
    "NodeUnavailable",
    "Unroutable",
    "node_endpoint",
    "routes_of",
    "trust_digest",
]

_log = logging.getLogger("comity.gateway.routing")

#: The share of a call's deadline it may spend waiting for its node's channel to connect.
CONNECT_SHARE = 0.5

_UNREACHABLE_HINT = (
    "try again later (a query that was not sent does not use up your daily quota); if it lasts, the "
    "node's operator must check that it is running and reachable from the gateway (address, TLS "
    "certificates, and a clock that agrees with the gateway's: a node whose clock is behind sees new "
    "certificates as not valid yet)"
)

refusals.register(
    refusals.Check(
        "NODE_CERTIFICATE_UNPINNED",
        "AUDIT_FIELDS",
        grpc.StatusCode.UNAVAILABLE,
        "node {node!r} is not reached: in the federation file (version {version}) its tls_cert file holds "
        "a certificate its tls_cert_sha256 does not pin, so the gateway trusts none for it; nothing was "
        "sent to it and the query does not use up your daily quota (the federation's operators must "
        "publish a version whose certificate and pin agree)",
        "the federation's signed membership names where each node listens and the certificate it shows",
    ),
)


class NodeUnavailable(Unavailable):
    """A node could not be reached or did not answer in time; nothing was disclosed."""


def trust_digest(pem: bytes) -> str:
    """A short name for the certificates a channel trusts: another value means another channel."""
    return hashlib.sha256(pem).hexdigest()


@dataclass(frozen=True)
class NodeEndpoint:
    """Where a node listens and the credentials that pin its certificate."""

    node_id: str
    address: str
    credentials: grpc.ChannelCredentials
    # The name the node's certificate is issued to, when it differs from the address's host.
    server_name: str = ""
    # What the credentials trust (see trust_digest); a channel is kept across federation versions
    # only while address, server name, trust and the client certificate shown are all the same.
    trust: str = ""
    # SHA-256 of the client certificate the credentials show ("" when not followed on disk).
    identity: str = ""

    def same_place(self, other: NodeEndpoint) -> bool:
        """Whether a channel to ``other`` is a channel to this endpoint, showing the same certificate."""
        return (self.address, self.server_name, self.trust, self.identity) == (
            other.address,
            other.server_name,
            other.trust,
            other.identity,
        )


@dataclass(frozen=True)
class Unroutable:
    """A node the federation lists but the gateway cannot build a channel to: every call gets ``error``."""

    node_id: str
    error: ComityError

    @classmethod
    def unpinned(cls, node_id: str, *, version: int | None) -> Unroutable:
        """The node's tls_cert file holds no certificate the federation file pins for it."""
        return cls(node_id, refusals.refuse("NODE_CERTIFICATE_UNPINNED", node=node_id, version=version))


class NodeChannel:
    """One node's long-lived channel and its stubs."""

    def __init__(self, endpoint: NodeEndpoint, *, max_message_bytes: int) -> None:
        options = channel_options(max_message_bytes)
        if endpoint.server_name:
            options.append(("grpc.ssl_target_name_override", endpoint.server_name))
        self.endpoint = endpoint
        self.channel = grpc.aio.secure_channel(
            endpoint.address, endpoint.credentials, options=options, interceptors=client_interceptors()
        )
        self.data = pb_grpc.DataNodeStub(self.channel)
        self.witness = pb_grpc.WitnessStub(self.channel)
        self.retired = asyncio.Event()

    async def connected(self, within: float) -> bool:
        """Whether the channel is ready, waiting up to ``within`` seconds for it to connect.

        False at once when the channel is retired meanwhile (a newer federation version replaced it).
        """
        state = self.channel.get_state(try_to_connect=True)
        if state == grpc.ChannelConnectivity.READY:
            return True
        retired = asyncio.ensure_future(self.retired.wait())
        change: asyncio.Future[None] | None = None
        try:
            async with asyncio.timeout(within):
                while state != grpc.ChannelConnectivity.READY:
                    if state == grpc.ChannelConnectivity.SHUTDOWN or self.retired.is_set():
                        return False
                    change = asyncio.ensure_future(self.channel.wait_for_state_change(state))
                    await asyncio.wait((change, retired), return_when=asyncio.FIRST_COMPLETED)
                    if not change.done():
                        return False
                    state = self.channel.get_state(try_to_connect=True)
                return True
        except TimeoutError:
            return False
        finally:
            retired.cancel()
            if change is not None:
                change.cancel()


Route = NodeChannel | Unroutable

#: The gateway's client credentials for one node (trusting exactly the certificates it pins).
Credentials = Callable[[Node], grpc.ChannelCredentials]


def node_endpoint(node: Node, credentials: Credentials) -> NodeEndpoint:
    """Where ``node`` listens, with ``credentials(node)``; raises ``ConfigError`` when its tls_cert
    file holds a certificate the federation file does not pin."""
    trusted = read_pinned_certificate(node.tls_cert, node.pins, what=f"node {node.id} tls_cert")
    identity = credentials.identity if isinstance(credentials, GatewayClientTls) else ""
    return NodeEndpoint(
        node.id,
        node.endpoint,
        credentials(node),
        server_name=node.host,
        trust=trust_digest(trusted),
        identity=identity,
    )


def routes_of(federation: Federation, credentials: Credentials) -> dict[str, NodeEndpoint | Unroutable]:
    """Every node of a federation version trusted while running: a node whose certificate cannot be
    trusted is :class:`Unroutable` (its queries refused, the version still taken for the others)."""
    routes: dict[str, NodeEndpoint | Unroutable] = {}
    for node in federation.nodes():
        try:
            routes[node.id] = node_endpoint(node, credentials)
        except (ComityError, OSError) as exc:
            why = exc.message if isinstance(exc, ComityError) else str(exc)
            _log.error(
                "ALERT: federation file version %s: node %s is not routed to: %s",
                federation.version,
                node.id,
                why,
            )
            routes[node.id] = Unroutable.unpinned(node.id, version=federation.version)
    return routes


class NodeChannels:
    """The node channels of the federation version in use, swapped whole when it changes."""

    def __init__(
        self,
        endpoints: Mapping[str, NodeEndpoint | Unroutable],
        *,
        deadline: float,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._deadline = deadline
        self._max_message_bytes = max_message_bytes
        self._routes: Mapping[str, Route] = MappingProxyType(
            {node_id: self._route(ep, None) for node_id, ep in endpoints.items()}
        )
        self._closing: set[asyncio.Task[None]] = set()

    def known(self) -> tuple[str, ...]:
        """The ids of the nodes routed to now, sorted."""
        return tuple(sorted(self._routes))

    def knows(self, node_id: str) -> bool:
        """Whether ``node_id`` is routed to now."""
        return node_id in self._routes

    def identities(self) -> set[str]:
        """The client certificates (SHA-256) the channels in use show."""
        return {r.endpoint.identity for r in self._routes.values() if isinstance(r, NodeChannel)}

    def replace(self, endpoints: Mapping[str, NodeEndpoint | Unroutable]) -> None:
        """Route to ``endpoints`` from now on: unchanged nodes keep their channel, the others get a
        new one, and channels no longer used close once their calls have ended."""
        old = self._routes
        new = MappingProxyType(
            {node_id: self._route(ep, old.get(node_id)) for node_id, ep in endpoints.items()}
        )
        self._routes = new  # the one step every call sees: the old set or the new one
        for node_id, route in old.items():
            if new.get(node_id) is not route:
                _log.warning("node %s: %s", node_id, _change(route, new.get(node_id)))
                if isinstance(route, NodeChannel):
                    self._retire(route)
        for node_id, route in new.items():
            if node_id not in old:
                _log.warning("node %s: %s", node_id, _change(None, route))

    def _route(self, endpoint: NodeEndpoint | Unroutable, held: Route | None) -> Route:
        if isinstance(endpoint, Unroutable):
            return endpoint
        if isinstance(held, NodeChannel) and held.endpoint.same_place(endpoint):
            return held
        return NodeChannel(endpoint, max_message_bytes=self._max_message_bytes)

    def _retire(self, route: NodeChannel) -> None:
        # A call sent on it has at most its deadline left; one still waiting for it to connect is
        # woken (retired) and starts again on the node's new route.
        route.retired.set()
        task = asyncio.get_running_loop().create_task(route.channel.close(grace=self._deadline))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _current(self, node_id: str) -> Route:
        try:
            return self._routes[node_id]
        except KeyError:
            known = ", ".join(self.known()) or "none"
            raise NotFound(f"unknown node {node_id!r}", hint=f"known nodes: {known}") from None

    def require_known(self, node_id: str) -> None:
        """Raise :class:`NotFound` for a node the federation version in use does not list (an
        :class:`Unroutable` one is listed: its calls raise its error)."""
        self._current(node_id)

    async def ready(self, node_id: str, *, deadline: float | None = None) -> tuple[NodeChannel, float]:
        """``node_id``'s channel once it is connected, and the seconds left of the call's deadline
        (``deadline``, by default the router's).

        Raises :class:`NotFound` for an unknown node, the node's own error when it is
        :class:`Unroutable`, and :class:`NodeUnavailable` when the channel does not connect within
        :data:`CONNECT_SHARE` of the deadline (nothing was sent).
        """
        loop = asyncio.get_running_loop()
        start = loop.time()
        total = self._deadline if deadline is None else deadline
        within = total * CONNECT_SHARE
        while True:
            route = self._current(node_id)
            if isinstance(route, Unroutable):
                raise route.error
            left = within - (loop.time() - start)
            connected = left > 0 and await route.connected(left)
            if self._routes.get(node_id) is not route:
                continue  # the federation moved the node meanwhile: its new route decides
            if connected:
                return route, total - (loop.time() - start)
            raise NodeUnavailable(
                f"node {node_id!r} could not be reached within {within:g} s, so nothing was sent to it",
                hint=_UNREACHABLE_HINT,
            )

    async def close(self) -> None:
        """Close every channel, those being retired too."""
        for route in self._routes.values():
            if isinstance(route, NodeChannel):
                await route.channel.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


def _change(old: Route | None, new: Route | None) -> str:
    """The log line of a node's route changing."""
    if new is None:
        return "no longer in the federation file: its channel is closed and queries to it are refused"
    if isinstance(new, Unroutable):
        return f"not routed to: {new.error.message}"
    ep = new.endpoint
    trusting = f", trusting certificates {ep.trust[:16]}…" if ep.trust else ""
    trusting += f", showing client certificate {ep.identity[:16]}…" if ep.identity else ""
    where = f"{ep.address} (certificate name {ep.server_name or 'from the address'}{trusting})"
    return f"added to the federation: routed to {where}" if old is None else f"now routed to {where}"
