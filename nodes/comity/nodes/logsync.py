"""Consistency proofs from the gateway's log, fetched by the node's witness when it needs them.

Concurrent queries reach a node in any order, each carrying the checkpoint that was newest when
the gateway forwarded it, so the witness may already have accepted a newer checkpoint than the
one a query brings, or an older one than the gateway assumed. It then needs a consistency
proof between the two, which only the log can give. The witness verifies every proof it is
handed, so asking the gateway's public AuditLog service requires no trust in the answer.
"""

from __future__ import annotations

import grpc

from comity.core.errors import Unavailable
from comity.core.federation import Federation
from comity.core.grpcopts import channel_options
from comity.core.tls import investigator_channel_credentials
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["GatewayLog"]


class GatewayLog:
    """A client of the gateway's AuditLog service for consistency proofs."""

    def __init__(self, federation: Federation, *, timeout: float = 5.0) -> None:
        credentials = investigator_channel_credentials(federation)
        self._endpoint = federation.gateway.endpoint
        self._channel = grpc.secure_channel(self._endpoint, credentials, options=channel_options())
        self._stub = pb_grpc.AuditLogStub(self._channel)
        self._timeout = timeout

    def consistency(self, first: int, second: int) -> list[bytes]:
        """The log's proof that the tree of size ``first`` is a prefix of the one of size ``second``."""
        try:
            proof: pb.ConsistencyProof = self._stub.GetConsistencyProof(
                pb.GetConsistencyProofRequest(first_size=first, second_size=second),
                timeout=self._timeout,
                # While the gateway restarts the channel is in reconnect backoff: wait for it
                # within the deadline instead of failing at once.
                wait_for_ready=True,
            )
        except grpc.RpcError as exc:
            call: grpc.Call = exc  # type: ignore[assignment]
            where = f"the gateway's log at {self._endpoint}"
            raise Unavailable(f"cannot get a consistency proof from {where}: {call.code().name}") from None
        return list(proof.hashes)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()
