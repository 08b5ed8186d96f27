"""Routing to data nodes: one long-lived mTLS channel per node, deadlines on every call."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import grpc

from comity.core.errors import ComityError, DeadlineExceeded, NotFound, Unavailable
from comity.core.grpcopts import DEFAULT_MAX_MESSAGE_BYTES, channel_options
from comity.core.rpc import GRPC_DETAILS_KEY, error_from_status
from comity.core.rpc_telemetry import client_interceptors
from comity.gateway.witness_client import WitnessAt, witness_size
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["NodeEndpoint", "NodeRouter", "NodeUnavailable"]

_log = logging.getLogger("comity.gateway.routing")


class NodeUnavailable(Unavailable):
    """A node could not be reached or did not answer in time; nothing was disclosed."""


@dataclass(frozen=True)
class NodeEndpoint:
    """Where a node listens and the credentials that pin its certificate."""

    node_id: str
    address: str
    credentials: grpc.ChannelCredentials
    # The name the node's certificate is issued to, when it differs from the address's host.
    server_name: str = ""


class NodeRouter:
    """Holds a channel per node; a TLS handshake per call would cost several times the call."""

    def __init__(
        self,
        endpoints: Mapping[str, NodeEndpoint],
        *,
        deadline: float = 10.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._deadline = deadline
        self._stubs: dict[str, pb_grpc.DataNodeStub] = {}
        self._witness_stubs: dict[str, pb_grpc.WitnessStub] = {}
        self._channels: list[grpc.aio.Channel] = []
        for node_id, ep in endpoints.items():
            options = channel_options(max_message_bytes)
            if ep.server_name:
                options.append(("grpc.ssl_target_name_override", ep.server_name))
            channel = grpc.aio.secure_channel(
                ep.address, ep.credentials, options=options, interceptors=client_interceptors()
            )
            self._channels.append(channel)
            self._stubs[node_id] = pb_grpc.DataNodeStub(channel)
            self._witness_stubs[node_id] = pb_grpc.WitnessStub(channel)

    def _stub(self, node_id: str) -> pb_grpc.DataNodeStub:
        try:
            return self._stubs[node_id]
        except KeyError:
            known = ", ".join(sorted(self._stubs)) or "none"
            raise NotFound(f"unknown node {node_id!r}", hint=f"known nodes: {known}") from None

    def witness_stub(self, node_id: str) -> pb_grpc.WitnessStub:
        """The node's witness service, on the node's own long-lived mTLS channel."""
        self._stub(node_id)  # NotFound for an unknown node
        return self._witness_stubs[node_id]

    @property
    def deadline(self) -> float:
        """The deadline of every call to a node, in seconds."""
        return self._deadline

    def knows(self, node_id: str) -> bool:
        """Whether ``node_id`` is a node this gateway routes to."""
        return node_id in self._stubs

    async def execute(
        self, node_id: str, request: pb.ExecuteRequest, *, metadata: tuple[tuple[str, str], ...] = ()
    ) -> pb.QueryResult:
        """Run ``request`` on ``node_id`` within the node deadline."""
        stub = self._stub(node_id)
        try:
            result: pb.QueryResult = await stub.Execute(request, timeout=self._deadline, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            raise _node_error(node_id, exc) from None
        return result

    async def execute_stream(
        self, node_id: str, request: pb.ExecuteRequest, *, metadata: tuple[tuple[str, str], ...] = ()
    ) -> AsyncIterator[pb.ResultChunk]:
        """Stream ``request``'s result from ``node_id``; chunks pass through without buffering."""
        stub = self._stub(node_id)
        call = stub.ExecuteStream(request, timeout=self._deadline, metadata=metadata)
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as exc:
            raise _node_error(node_id, exc) from None

    async def witness_state(self, node_id: str) -> int:
        """The tree size of the last checkpoint ``node_id``'s witness accepted."""
        stub = self._stub(node_id)
        try:
            state: pb.WitnessState = await stub.GetWitnessState(
                pb.GetWitnessStateRequest(), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as exc:
            raise _node_error(node_id, exc) from None
        return state.tree_size

    async def private_filters(self, node_id: str, request: pb.GetPrivateFiltersRequest) -> pb.PrivateFilters:
        """``node_id``'s signed private hit check filters, as the node sent them."""
        stub = self._stub(node_id)
        try:
            filters: pb.PrivateFilters = await stub.GetPrivateFilters(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as exc:
            raise _node_error(node_id, exc) from None
        return filters

    async def outbox(self, node_id: str, *, after: int = 0, limit: int = 0) -> list[pb.OutboxItem]:
        """The signed decisions ``node_id`` keeps until they are acknowledged as logged."""
        stub = self._stub(node_id)
        try:
            response: pb.ListOutboxResponse = await stub.ListOutbox(
                pb.ListOutboxRequest(after=after, limit=limit), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as exc:
            raise _node_error(node_id, exc) from None
        return list(response.items)

    async def acknowledge(self, node_id: str, sequences: list[int]) -> int:
        """Tell ``node_id`` its outbox items ``sequences`` are in the log (it forgets them)."""
        stub = self._stub(node_id)
        try:
            response: pb.AcknowledgeOutboxResponse = await stub.AcknowledgeOutbox(
                pb.AcknowledgeOutboxRequest(sequences=sequences), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as exc:
            raise _node_error(node_id, exc) from None
        return response.acknowledged

    async def close(self) -> None:
        """Close every channel."""
        for channel in self._channels:
            await channel.close()


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
