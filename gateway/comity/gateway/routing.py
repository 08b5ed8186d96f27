"""Routing to data nodes: one long-lived mTLS channel per node, deadlines on every call.

Every call waits for its node's channel to connect (within a share of the deadline) before it is
sent, and the channels follow the federation file in use (``comity.gateway.node_channels``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping

import grpc

from comity.core.errors import ComityError, DeadlineExceeded
from comity.core.federation import Federation
from comity.core.grpcopts import DEFAULT_MAX_MESSAGE_BYTES
from comity.core.rpc import GRPC_DETAILS_KEY, error_from_status
from comity.gateway.node_channels import (
    Credentials,
    NodeChannels,
    NodeEndpoint,
    NodeUnavailable,
    Unroutable,
    node_endpoint,
    routes_of,
)
from comity.gateway.witness_client import WitnessAt, witness_size
from comity.v1 import comity_pb2 as pb

__all__ = ["NodeEndpoint", "NodeRouter", "NodeUnavailable", "ReadyWitness", "Unroutable"]

_log = logging.getLogger("comity.gateway.routing")


class NodeRouter:
    """Holds a channel per node; a TLS handshake per call would cost several times the call."""

    def __init__(
        self,
        endpoints: Mapping[str, NodeEndpoint | Unroutable],
        *,
        deadline: float = 10.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._deadline = deadline
        self._channels = NodeChannels(endpoints, deadline=deadline, max_message_bytes=max_message_bytes)

    @classmethod
    def of_federation(
        cls,
        federation: Federation,
        credentials: Credentials,
        *,
        deadline: float = 10.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> NodeRouter:
        """A channel to every node of ``federation``; raises ``ConfigError`` when a node's tls_cert
        file holds a certificate the file does not pin (the gateway does not start)."""
        endpoints = {n.id: node_endpoint(n, credentials) for n in federation.nodes()}
        return cls(endpoints, deadline=deadline, max_message_bytes=max_message_bytes)

    def use_federation(self, federation: Federation, credentials: Credentials) -> None:
        """Follow a newly trusted federation version: moved nodes get a new channel, added ones
        one, removed ones are refused as unknown; a node whose certificate the version does not
        pin is refused (``NODE_CERTIFICATE_UNPINNED``) rather than reached at its old place."""
        self.use_endpoints(routes_of(federation, credentials))

    def use_endpoints(self, endpoints: Mapping[str, NodeEndpoint | Unroutable]) -> None:
        """Route to ``endpoints`` from now on: see :meth:`NodeChannels.replace`."""
        self._channels.replace(endpoints)

    def client_identities(self) -> set[str]:
        """The client certificates (SHA-256) the node channels in use show."""
        return self._channels.identities()

    def witness_stub(self, node_id: str) -> ReadyWitness:
        """The node's witness service, on whichever channel the node has when a call is made."""
        self._channels.require_known(node_id)  # NotFound for an unknown node; its calls say the rest
        return ReadyWitness(self._channels, node_id)

    @property
    def deadline(self) -> float:
        """The deadline of every call to a node, in seconds."""
        return self._deadline

    def knows(self, node_id: str) -> bool:
        """Whether ``node_id`` is a node this gateway routes to."""
        return self._channels.knows(node_id)

    def nodes(self) -> tuple[str, ...]:
        """The nodes this gateway routes to now, sorted."""
        return self._channels.known()

    async def execute(
        self, node_id: str, request: pb.ExecuteRequest, *, metadata: tuple[tuple[str, str], ...] = ()
    ) -> pb.QueryResult:
        """Run ``request`` on ``node_id`` within the node deadline."""
        node, left = await self._channels.ready(node_id)
        try:
            result: pb.QueryResult = await node.data.Execute(request, timeout=left, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            raise _node_error(node_id, exc) from None
        return result

    async def execute_stream(
        self, node_id: str, request: pb.ExecuteRequest, *, metadata: tuple[tuple[str, str], ...] = ()
    ) -> AsyncGenerator[pb.ResultChunk]:
        """Stream ``request``'s result from ``node_id``, chunk by chunk; closing the generator
        early cancels the node's call."""
        node, left = await self._channels.ready(node_id)
        call = node.data.ExecuteStream(request, timeout=left, metadata=metadata)
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as exc:
            raise _node_error(node_id, exc) from None
        finally:
            call.cancel()  # nothing once the call has ended

    async def witness_state(self, node_id: str) -> int:
        """The tree size of the last checkpoint ``node_id``'s witness accepted."""
        node, left = await self._channels.ready(node_id)
        try:
            state: pb.WitnessState = await node.data.GetWitnessState(
                pb.GetWitnessStateRequest(), timeout=left
            )
        except grpc.aio.AioRpcError as exc:
            raise _node_error(node_id, exc) from None
        return state.tree_size

    async def private_filters(self, node_id: str, request: pb.GetPrivateFiltersRequest) -> pb.PrivateFilters:
        """``node_id``'s signed private hit check filters, as the node sent them."""
        node, left = await self._channels.ready(node_id)
        try:
            filters: pb.PrivateFilters = await node.data.GetPrivateFilters(request, timeout=left)
        except grpc.aio.AioRpcError as exc:
            raise _node_error(node_id, exc) from None
        return filters

    async def outbox(self, node_id: str, *, after: int = 0, limit: int = 0) -> list[pb.OutboxItem]:
        """The signed decisions ``node_id`` keeps until they are acknowledged as logged."""
        node, left = await self._channels.ready(node_id)
        try:
            response: pb.ListOutboxResponse = await node.data.ListOutbox(
                pb.ListOutboxRequest(after=after, limit=limit), timeout=left
            )
        except grpc.aio.AioRpcError as exc:
            raise _node_error(node_id, exc) from None
        return list(response.items)

    async def acknowledge(self, node_id: str, sequences: list[int]) -> int:
        """Tell ``node_id`` its outbox items ``sequences`` are in the log (it forgets them)."""
        node, left = await self._channels.ready(node_id)
        try:
            response: pb.AcknowledgeOutboxResponse = await node.data.AcknowledgeOutbox(
                pb.AcknowledgeOutboxRequest(sequences=sequences), timeout=left
            )
        except grpc.aio.AioRpcError as exc:
            raise _node_error(node_id, exc) from None
        return response.acknowledged

    async def close(self) -> None:
        """Close every channel."""
        await self._channels.close()


class ReadyWitness:
    """A node's witness service with the calls of a ``WitnessStub``, each sent once the node's
    current channel is connected (within the share of ``timeout`` the router allows).

    A call that cannot connect raises :class:`NodeUnavailable` (nothing was sent); the witness's
    own answers raise ``grpc.aio.AioRpcError`` as a stub's do.
    """

    def __init__(self, channels: NodeChannels, node_id: str) -> None:
        self._channels = channels
        self._node_id = node_id

    async def AddCheckpoint(
        self,
        request: pb.AddCheckpointRequest,
        *,
        timeout: float,  # noqa: ASYNC109 -- a stub's signature
    ) -> pb.AddCheckpointResponse:
        """The witness's AddCheckpoint call."""
        node, left = await self._channels.ready(self._node_id, deadline=timeout)
        response: pb.AddCheckpointResponse = await node.witness.AddCheckpoint(request, timeout=left)
        return response

    async def GetLatestCosigned(
        self,
        request: pb.GetLatestCosignedRequest,
        *,
        timeout: float,  # noqa: ASYNC109 -- a stub's signature
    ) -> pb.CheckpointResponse:
        """The witness's GetLatestCosigned call."""
        node, left = await self._channels.ready(self._node_id, deadline=timeout)
        response: pb.CheckpointResponse = await node.witness.GetLatestCosigned(request, timeout=left)
        return response


def _node_error(node_id: str, exc: grpc.aio.AioRpcError) -> ComityError:
    code = exc.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(f"node {node_id!r} did not answer within the deadline")
    if not _from_comity(exc):
        # gRPC's own words (addresses, transport and TLS errors): for this log, not for callers.
        _log.warning("node %s: %s: %s", node_id, code.name, exc.details())
        if code == grpc.StatusCode.UNAVAILABLE:
            return NodeUnavailable(
                f"node {node_id!r} cannot be reached, so the query was not answered",
                hint="try again later; if it lasts, the node's operator must check that it is running "
                "and reachable from the gateway (address, TLS certificates, and a clock that agrees with "
                "the gateway's: a node whose clock is behind sees new certificates as not valid yet)",
            )
        return NodeUnavailable(
            f"node {node_id!r} failed to answer ({code.name}), so the query was not answered",
            hint="try again later; the gateway's log has the details for its operator",
        )
    # The node's own answer (its inbound policy, a bad selector, its store down) reaches the
    # caller as the node worded it.
    err = error_from_status(code, f"node {node_id!r}: {exc.details()}", exc.trailing_metadata())
    size = witness_size(exc.trailing_metadata())
    if code == grpc.StatusCode.FAILED_PRECONDITION and size is not None:
        # The node's witness is elsewhere than the gateway's proof assumed: forwarded again from there.
        return WitnessAt(err.message, size=size, violations=err.violations)
    return err


def _from_comity(exc: grpc.aio.AioRpcError) -> bool:
    """Whether the status came from a Comity handler (which always sends its status details)."""
    return any(key == GRPC_DETAILS_KEY for key, _ in exc.trailing_metadata() or ())
