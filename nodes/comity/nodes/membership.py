"""Whether the federation file still lists this node: a removed member fails closed.

A newly trusted version that no longer lists the node is the federation's decision (its
signers' threshold signed it), so the node takes it rather than refusing it, and from then on
answers no request and cosigns nothing: every call of its DataNode and Witness services is
refused with ``NODE_NOT_A_MEMBER`` once the caller is authenticated, and the check runs again
just before its witness would cosign a query's checkpoint. It keeps following the file: a later
version that lists the node again (prepared as usual) makes it serve again.

Its gRPC health service says the same (:meth:`Membership.follow_health`): the node's services
are NOT_SERVING while it is removed and SERVING again once a version lists it; the server as a
whole (the empty service name) stays SERVING, since the process is up and a restart would not help.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2

from comity.core import refusals

__all__ = ["Membership"]

_log = logging.getLogger("comity.node")

refusals.register(
    refusals.Check(
        "NODE_NOT_A_MEMBER",
        "NO_AGREEMENT",
        grpc.StatusCode.FAILED_PRECONDITION,
        "node {node!r} answers nothing and cosigns nothing: the federation file version {version} no "
        "longer lists it; its operator stops it, or the federation's signers list it again in a newer "
        "version",
        "The federation file's signed membership: only the nodes it lists take part in its agreements",
    ),
)


class Membership:
    """This node's standing in the federation file version in use (swapped with each version)."""

    def __init__(self, node_id: str) -> None:
        self._node_id = node_id
        self._removed_in: int | None = None
        self._removed = False
        self._health: health.aio.HealthServicer | None = None
        self._services: tuple[str, ...] = ()
        self._updates: set[asyncio.Task[None]] = set()

    def follow_health(self, servicer: health.aio.HealthServicer, services: Sequence[str]) -> None:
        """Have ``services`` of ``servicer`` say NOT_SERVING while this node is removed, SERVING otherwise."""
        self._health, self._services = servicer, tuple(services)

    def removed(self, version: int | None) -> None:
        """The version in use from now on does not list this node: refuse everything (an ALERT)."""
        self._removed, self._removed_in = True, version
        _log.error(
            "ALERT: federation file version %s no longer lists node %s: it refuses every request "
            "(NODE_NOT_A_MEMBER) and its witness cosigns nothing; stop this node, or have the "
            "federation's signers list it again in a newer version",
            version,
            self._node_id,
        )
        self._update_health()

    def listed(self, version: int | None) -> None:
        """The version in use from now on lists this node (again, after :meth:`removed`)."""
        if self._removed:
            self._removed = False
            _log.warning("federation file version %s lists node %s again: serving", version, self._node_id)
            self._update_health()

    def _update_health(self) -> None:
        # Called from a federation version's swap, on the event loop, which must not wait; each
        # update sets the standing at the time it runs, so the last one always wins.
        if self._health is None:
            return
        task = asyncio.get_running_loop().create_task(self._set_health(self._health))
        self._updates.add(task)
        task.add_done_callback(self._updates.discard)

    async def _set_health(self, servicer: health.aio.HealthServicer) -> None:
        status = (
            health_pb2.HealthCheckResponse.NOT_SERVING
            if self._removed
            else health_pb2.HealthCheckResponse.SERVING
        )
        for name in self._services:
            await servicer.set(name, status)

    def require_member(self) -> None:
        """Refuse with ``NODE_NOT_A_MEMBER`` while the version in use does not list this node."""
        if self._removed:
            raise refusals.refuse("NODE_NOT_A_MEMBER", node=self._node_id, version=self._removed_in)
