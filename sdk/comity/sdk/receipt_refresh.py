"""Upgrading a receipt to a newer, quorum-cosigned checkpoint.

A fresh receipt is proved against the checkpoint the gateway signed right after the query's
last entry, which the witnesses may not have cosigned yet ("quorum pending"). Once they have
cosigned a checkpoint covering it, :func:`refresh_receipt` fetches that checkpoint and its
cosignatures, checks that it extends the receipt's checkpoint (a consistency proof, so the
gateway cannot swap histories), proves every entry into it afresh, and returns the receipt
that now verifies in full. Nothing the gateway sends is trusted: the result is verified as
any receipt is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import grpc

from comity.audit.errors import AuditError, InconsistentLog
from comity.audit.proof import verify_consistency
from comity.audit.receipt import ReceiptTrust, VerifiedReceipt, quorum_pending, verify_query_receipt
from comity.audit.receipt_refusals import QuorumPending
from comity.core.errors import Unavailable
from comity.core.grpcopts import channel_options
from comity.core.refusals import violation
from comity.core.rpc import error_from_status
from comity.sdk.failover import Replicas
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["CheckpointSource", "GatewayCheckpoints", "await_quorum", "refresh_receipt"]


class CheckpointSource(Protocol):
    """Where newer checkpoints and proofs come from (the gateway's AuditLog service)."""

    def quorum_checkpoint(self, size: int) -> pb.CheckpointResponse:
        """A checkpoint of at least ``size`` with its cosignatures (the newest, at the least)."""
        ...

    def inclusion(self, index: int, size: int) -> Sequence[bytes]:
        """The inclusion proof of entry ``index`` in the tree of ``size``."""
        ...

    def consistency(self, first: int, second: int) -> Sequence[bytes]:
        """The consistency proof from the tree of ``first`` to that of ``second``."""
        ...


def refresh_receipt(
    receipt: pb.Receipt, trust: ReceiptTrust, source: CheckpointSource
) -> tuple[pb.Receipt, VerifiedReceipt]:
    """The receipt proved against a quorum checkpoint from ``source``, and what it proves.

    Raises ``ReceiptInvalid`` if the receipt does not verify to begin with, ``QuorumPending``
    if no checkpoint covering it has a quorum yet, :class:`InconsistentLog` if the new
    checkpoint does not extend the receipt's.
    """
    old = verify_query_receipt(receipt, trust, require_quorum=False)
    if not old.quorum_pending:
        return receipt, old
    response = source.quorum_checkpoint(old.tree_size)
    newest = max(e.inclusion.leaf_index for e in receipt.entries)
    quorum = trust.checkpoint(response.checkpoint.signed_note, list(response.cosignatures), not_before=None)
    head = quorum.checkpoint
    if not quorum.reached:
        raise quorum_pending(quorum)
    if head.size <= newest:
        v = violation(
            "RECEIPT_QUORUM_PENDING",
            size=old.tree_size,
            missing=f"a quorum checkpoint covering entry {newest} (the newest has size {head.size})",
        )
        raise QuorumPending(v.message, violation=v, missing=dict(old.quorum.missing))
    if head.size < old.tree_size:
        raise InconsistentLog(
            f"the gateway offered checkpoint {head.size}, older than the receipt's {old.tree_size}",
            hint="ask again later; report it if it persists",
        )
    try:
        verify_consistency(
            old.tree_size,
            head.size,
            source.consistency(old.tree_size, head.size) if head.size > old.tree_size else [],
            old.quorum.checkpoint.root_hash,
            head.root_hash,
        )
    except AuditError as exc:
        raise InconsistentLog(
            f"the new checkpoint ({head.size}) does not extend the receipt's ({old.tree_size}): "
            f"{exc.message}",
            hint="the log's history was rewritten or forked; keep both checkpoints and report it",
        ) from None
    refreshed = pb.Receipt()
    refreshed.CopyFrom(receipt)
    refreshed.checkpoint.CopyFrom(response.checkpoint)
    del refreshed.cosignatures[:]
    refreshed.cosignatures.extend(response.cosignatures)
    for entry in refreshed.entries:
        index = entry.inclusion.leaf_index
        entry.inclusion.CopyFrom(
            pb.InclusionProof(
                leaf_index=index, tree_size=head.size, hashes=list(source.inclusion(index, head.size))
            )
        )
    return refreshed, verify_query_receipt(refreshed, trust, require_quorum=True)


def await_quorum(
    receipt: pb.Receipt,
    trust: ReceiptTrust,
    source: CheckpointSource,
    *,
    timeout: float,
    poll: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[pb.Receipt, VerifiedReceipt]:
    """:func:`refresh_receipt` until a quorum checkpoint covers the receipt, for at most ``timeout`` s.

    Raises ``QuorumPending`` when none does by then (the witnesses are late: see the gateway's
    ``comity.witness.quorum`` health), and whatever :func:`refresh_receipt` raises otherwise.
    """
    deadline = clock() + timeout
    while True:
        try:
            return refresh_receipt(receipt, trust, source)
        except QuorumPending:
            if clock() >= deadline:
                raise
        sleep(poll)


class GatewayCheckpoints:
    """A :class:`CheckpointSource` over a gateway's AuditLog service (public calls: no token).

    Given several replicas' addresses, a call that finds one unavailable goes to the next (reads
    are safe to repeat), and the one that answered last is asked first."""

    def __init__(
        self, target: str | Sequence[str], *, root_certificates: bytes | None, timeout: float = 30.0
    ) -> None:
        credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)

        def connect(address: str) -> tuple[grpc.Channel, pb_grpc.AuditLogStub]:
            channel = grpc.secure_channel(address, credentials, options=channel_options())
            return channel, pb_grpc.AuditLogStub(channel)

        self._replicas = Replicas((target,) if isinstance(target, str) else tuple(target), connect)
        self._timeout = timeout

    @property
    def target(self) -> str:
        """The address asked first."""
        return self._replicas.preferred

    def close(self) -> None:
        """Close every channel."""
        for channel in self._replicas.channels():
            channel.close()  # type: ignore[attr-defined]

    def _call(self, method: str, request: object) -> Any:
        down: list[str] = []
        for address in self._replicas.order():
            try:
                answer = getattr(self._replicas.stub(address), method)(request, timeout=self._timeout)
            except grpc.RpcError as exc:
                call: grpc.Call = exc  # type: ignore[assignment]
                if call.code() == grpc.StatusCode.UNAVAILABLE:
                    down.append(address)
                    continue
                self._replicas.answered(address)
                raise error_from_status(call.code(), call.details() or "", call.trailing_metadata()) from None
            self._replicas.answered(address)
            return answer
        raise Unavailable(f"the gateway's audit log is unavailable at {', '.join(down)}")

    def quorum_checkpoint(self, size: int) -> pb.CheckpointResponse:
        """The gateway's newest quorum checkpoint and its cosignatures (``tree_size`` 0 asks for it)."""
        response: pb.CheckpointResponse = self._call("GetCheckpoint", pb.GetCheckpointRequest(tree_size=0))
        return response

    def inclusion(self, index: int, size: int) -> Sequence[bytes]:
        """The inclusion proof of entry ``index`` in the tree of ``size``."""
        proof: pb.InclusionProof = self._call(
            "GetInclusionProof", pb.GetInclusionProofRequest(leaf_index=index, tree_size=size)
        )
        return list(proof.hashes)

    def consistency(self, first: int, second: int) -> Sequence[bytes]:
        """The consistency proof between two tree sizes."""
        proof: pb.ConsistencyProof = self._call(
            "GetConsistencyProof", pb.GetConsistencyProofRequest(first_size=first, second_size=second)
        )
        return list(proof.hashes)
