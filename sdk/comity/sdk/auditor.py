"""The legal officers' client: verify the gateway's log from its AuditLog service.

It trusts nothing the gateway says: it fetches every entry, recomputes the RFC 6962 root
(keeping only the tree's right border in memory), checks the checkpoint's signature by the
log key the federation registers and the witnesses' cosignatures, and checks that the new
checkpoint extends the last one this officer accepted (a consistency proof), so a gateway
cannot rewrite history or show two countries different logs without being caught.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from comity.audit.checkpoint import SignedCheckpoint, open_checkpoint
from comity.audit.cosignature import CosignatureVerifier
from comity.audit.errors import AuditError, LogVerificationError
from comity.audit.note import Ed25519Verifier
from comity.audit.proof import verify_consistency
from comity.audit.rfc6962 import hash_leaf
from comity.audit.tree import CompactRange
from comity.core.errors import ComityError, Unavailable
from comity.core.grpcopts import channel_options
from comity.core.rpc import error_from_status
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["AuditClient", "RemoteReport", "verify_remote"]

PAGE = 1000


@dataclass(frozen=True)
class RemoteReport:
    """What a remote verification established."""

    tree_size: int
    root_hash: bytes
    cosigned_by: tuple[str, ...]
    previous_size: int | None


class AuditClient:
    """Reads the AuditLog service of a gateway over TLS.

    Checkpoints and proofs are public; entries need ``token``, a legal officer's bearer token
    (a string, or a function returning one, called per request so it can rotate).
    """

    def __init__(
        self,
        target: str,
        *,
        root_certificates: bytes,
        token: str | Callable[[], str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._token = token
        self._channel = grpc.secure_channel(
            target,
            grpc.ssl_channel_credentials(root_certificates=root_certificates),
            options=channel_options(),
        )
        self._stub = pb_grpc.AuditLogStub(self._channel)
        self._timeout = timeout
        self.target = target

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def _metadata(self) -> list[tuple[str, str]]:
        if self._token is None:
            return []
        token = self._token() if callable(self._token) else self._token
        return [("authorization", f"Bearer {token}")]

    def _call(self, method: str, request: object) -> object:
        try:
            return getattr(self._stub, method)(request, timeout=self._timeout, metadata=self._metadata())
        except grpc.RpcError as exc:
            call: grpc.Call = exc  # type: ignore[assignment]
            if call.code() == grpc.StatusCode.UNAVAILABLE:
                raise Unavailable(f"the gateway's audit log at {self.target} is unavailable") from None
            raise error_from_status(call.code(), call.details() or "", call.trailing_metadata()) from None

    def checkpoint(self) -> pb.CheckpointResponse:
        """The newest checkpoint and its cosignatures."""
        response: pb.CheckpointResponse = self._call("GetCheckpoint", pb.GetCheckpointRequest())  # type: ignore[assignment]
        return response

    def entries(self, start: int, end: int) -> Iterator[pb.LogEntry]:
        """Entries ``start`` to ``end`` (exclusive), fetched a page at a time."""
        while start < end:
            page: pb.GetEntriesResponse = self._call(  # type: ignore[assignment]
                "GetEntries", pb.GetEntriesRequest(start=start, end=min(end, start + PAGE))
            )
            if not page.entries:
                raise LogVerificationError(
                    f"the gateway returned no entries from index {start}", entry_index=start
                )
            for entry in page.entries:
                if entry.index != start:
                    raise LogVerificationError(
                        f"expected entry {start}, got {entry.index}", entry_index=start
                    )
                yield entry
                start += 1

    def consistency(self, first: int, second: int) -> list[bytes]:
        """The consistency proof between two tree sizes."""
        proof: pb.ConsistencyProof = self._call(  # type: ignore[assignment]
            "GetConsistencyProof", pb.GetConsistencyProofRequest(first_size=first, second_size=second)
        )
        return list(proof.hashes)


def _signed(
    note: bytes,
    cosignatures: Sequence[str],
    log_key: Ed25519Verifier,
    witnesses: Sequence[CosignatureVerifier],
) -> SignedCheckpoint:
    text = note if note.endswith(b"\n") else note + b"\n"
    full = text + "".join(c if c.endswith("\n") else c + "\n" for c in cosignatures).encode()
    try:
        return open_checkpoint(full, log_key, witnesses=witnesses)
    except AuditError as exc:
        raise LogVerificationError(f"the checkpoint does not verify: {exc.message}") from None


def verify_remote(
    client: AuditClient,
    *,
    log_key: Ed25519Verifier,
    witnesses: Sequence[CosignatureVerifier],
    state: Path | None,
) -> RemoteReport:
    """Verify the whole log behind ``client``; raise LogVerificationError naming the first problem.

    ``state`` holds the last checkpoint this officer accepted; the new one must extend it, and on
    success it replaces it.
    """
    response = client.checkpoint()
    signed = _signed(response.checkpoint.signed_note, response.cosignatures, log_key, witnesses)
    head = signed.checkpoint
    tree = CompactRange()
    for entry in client.entries(0, head.size):
        tree.append(hash_leaf(entry.data))
    if tree.root() != head.root_hash:
        raise LogVerificationError(
            f"the entries do not hash to the checkpoint's root at size {head.size}", tree_size=head.size
        )
    previous = _check_previous(client, state, log_key, head.size, head.root_hash)
    if state is not None:
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_bytes(response.checkpoint.signed_note)
    names = tuple(sorted({c.name for c in signed.cosignatures}))
    return RemoteReport(head.size, head.root_hash, names, previous)


def _check_previous(
    client: AuditClient, state: Path | None, log_key: Ed25519Verifier, size: int, root: bytes
) -> int | None:
    if state is None or not state.exists():
        return None
    try:
        old = open_checkpoint(state.read_bytes(), log_key).checkpoint
    except (OSError, AuditError) as exc:
        raise LogVerificationError(f"the remembered checkpoint in {state} cannot be read: {exc}") from None
    if old.size == 0:
        return 0  # the empty tree is a prefix of every tree
    if old.size > size:
        raise LogVerificationError(f"the log shrank: it had {old.size} entries, now {size}", tree_size=size)
    try:
        verify_consistency(
            old.size, size, client.consistency(old.size, size) if old.size else [], old.root_hash, root
        )
    except (AuditError, ComityError) as exc:
        raise LogVerificationError(
            f"the log of size {size} does not extend the one of size {old.size} accepted before: {exc}",
            tree_size=size,
        ) from None
    return old.size
