"""Whether the federation file still lists this node: a removed member fails closed.

A newly trusted version that no longer lists the node is the federation's decision (its
signers' threshold signed it), so the node takes it rather than refusing it, and from then on
answers no request and cosigns nothing: every call of its DataNode and Witness services is
refused with ``NODE_NOT_A_MEMBER`` once the caller is authenticated, and the check runs again
just before its witness would cosign a query's checkpoint. It keeps following the file: a later
version that lists the node again (prepared as usual) makes it serve again.
"""

from __future__ import annotations

import logging

import grpc

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

    def listed(self, version: int | None) -> None:
        """The version in use from now on lists this node (again, after :meth:`removed`)."""
        if self._removed:
            self._removed = False
            _log.warning("federation file version %s lists node %s again: serving", version, self._node_id)

    def require_member(self) -> None:
        """Refuse with ``NODE_NOT_A_MEMBER`` while the version in use does not list this node."""
        if self._removed:
            raise refusals.refuse("NODE_NOT_A_MEMBER", node=self._node_id, version=self._removed_in)
