"""The legal officers' client: verify the gateway's log from its AuditLog service.

It trusts nothing the gateway says: it fetches every entry, recomputes the RFC 6962 root
(keeping only the tree's right border in memory), checks the checkpoint's signature by the
log key the federation registers and the witnesses' cosignatures, and checks that the new
checkpoint extends the last one this officer accepted (a consistency proof), so a gateway
cannot rewrite history or show two countries different logs without being caught.

With a :class:`~comity.audit.quorum.Quorum` it asks for the newest checkpoint with a witness
quorum, verifies every cosignature under the witnesses' key histories and judges the quorum
itself, then reports the entries after it ("quorum pending") and fails once the oldest has
waited longer than the bound. The state file remembers the quorum's cosignatures; a later run
fails if the gateway no longer shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc

from comity.audit.checkpoint import SignedCheckpoint, with_cosignatures
from comity.audit.cosignature import CosignatureVerifier
from comity.audit.errors import AuditError, LogVerificationError
from comity.audit.events import decode_event
from comity.audit.note import Ed25519Verifier, NoteSignature
from comity.audit.quorum import Quorum, note_cosignatures
from comity.audit.readers import ReadableSets, ReaderIndex, Readership
from comity.audit.rfc6962 import hash_leaf
from comity.audit.tree import CompactRange
from comity.audit.verifystate import VerifierState
from comity.core.errors import Unavailable
from comity.core.grpcopts import channel_options
from comity.core.rpc import error_from_status
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["AuditClient", "RemoteReport", "entry_leaf", "verify_remote"]

PAGE = 1000
LEAF_HASH_SIZE = 32


@dataclass(frozen=True)
class RemoteReport:
    """What a remote verification established."""

    tree_size: int
    root_hash: bytes
    cosigned_by: tuple[str, ...]
    previous_size: int | None
    quorum_size: int | None = None
    pending_entries: int = 0
    pending_since: datetime | None = None
    pinned_size: int | None = None
    #: Entries served withheld (leaf hash only: another agreement's entries).
    withheld: int = 0
    #: Per set of reader countries: (label, entries shown, fingerprint), to compare with the
    #: other parties' officers (:class:`~comity.audit.readers.ReadableSets`).
    readable: tuple[tuple[str, int, str], ...] = ()


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

    def checkpoint(self, tree_size: int = 0) -> pb.CheckpointResponse:
        """The checkpoint of ``tree_size`` (0: the newest with a witness quorum) and its cosignatures."""
        request = pb.GetCheckpointRequest(tree_size=tree_size)
        response: pb.CheckpointResponse = self._call("GetCheckpoint", request)  # type: ignore[assignment]
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
                _check_shape(entry)
                yield entry
                start += 1

    def consistency(self, first: int, second: int) -> list[bytes]:
        """The consistency proof between two tree sizes."""
        proof: pb.ConsistencyProof = self._call(  # type: ignore[assignment]
            "GetConsistencyProof", pb.GetConsistencyProofRequest(first_size=first, second_size=second)
        )
        return list(proof.hashes)

    def inclusion(self, index: int, tree_size: int) -> list[bytes]:
        """The inclusion proof of entry ``index`` in the tree of ``tree_size`` entries."""
        proof: pb.InclusionProof = self._call(  # type: ignore[assignment]
            "GetInclusionProof", pb.GetInclusionProofRequest(leaf_index=index, tree_size=tree_size)
        )
        return list(proof.hashes)


def _check_shape(entry: pb.LogEntry) -> None:
    """An entry is either its bytes, or withheld with a leaf hash; anything else is refused."""
    if entry.withheld:
        if entry.data or len(entry.leaf_hash) != LEAF_HASH_SIZE:
            raise LogVerificationError(
                f"withheld entry {entry.index} must carry a {LEAF_HASH_SIZE}-byte leaf hash and no data",
                entry_index=entry.index,
            )
    elif not entry.data:
        raise LogVerificationError(f"entry {entry.index} came with no data", entry_index=entry.index)


def entry_leaf(entry: pb.LogEntry) -> bytes:
    """The leaf hash of an entry as served: recomputed from its bytes, or as given when withheld.

    A withheld leaf hash that is not the entry's gives another tree root, which the checkpoint
    check catches like an altered entry.
    """
    return bytes(entry.leaf_hash) if entry.withheld else hash_leaf(entry.data)


def _signed(
    note: bytes, cosignatures: Sequence[str], log_key: Ed25519Verifier, quorum: Quorum
) -> SignedCheckpoint:
    text = note if note.endswith(b"\n") else note + b"\n"
    full = text + "".join(c if c.endswith("\n") else c + "\n" for c in cosignatures).encode()
    try:
        return quorum.open(full, log_key)
    except AuditError as exc:
        raise LogVerificationError(f"the checkpoint does not verify: {exc.message}") from None


def _cosigners(signed: SignedCheckpoint, lines: Sequence[str], quorum: Quorum) -> dict[str, str]:
    try:
        return quorum.cosigners(signed.text, lines)
    except AuditError as exc:
        size = signed.checkpoint.size
        raise LogVerificationError(f"checkpoint {size}: {exc.message}", tree_size=size) from None


def verify_remote(
    client: AuditClient,
    *,
    log_key: Ed25519Verifier,
    witnesses: Sequence[CosignatureVerifier] = (),
    state: Path | None,
    quorum: Quorum | None = None,
    now: datetime | None = None,
    readership: Readership | None = None,
) -> RemoteReport:
    """Verify the whole log behind ``client``; raise LogVerificationError naming the first problem.

    ``quorum`` (default: every one of ``witnesses``) decides which cosignatures count. ``state``
    holds what this officer accepted before (:class:`VerifierState`): the log must still hold
    those trees and still show the quorum's cosignatures; on success it is updated. Withheld
    entries (another agreement's) verify by their leaf hashes and are counted; with
    ``readership`` the entries shown are counted and fingerprinted per set of reader countries.
    """
    quorum = quorum or Quorum.every_witness(witnesses)
    saved = VerifierState.load(state)
    response = client.checkpoint()
    top = _signed(response.checkpoint.signed_note, response.cosignatures, log_key, quorum)
    ids = _cosigners(top, response.cosignatures, quorum)
    quorum_size = top.checkpoint.size if quorum.is_quorum(ids) else None
    head = top
    if response.log_size > top.checkpoint.size:
        latest = client.checkpoint(response.log_size)
        head = _signed(latest.checkpoint.signed_note, latest.cosignatures, log_key, quorum)
        _cosigners(head, latest.cosignatures, quorum)
    remembered = _remembered(saved, log_key, quorum)
    roots = {top.checkpoint.size: top.checkpoint.root_hash, head.checkpoint.size: head.checkpoint.root_hash}
    for old in remembered.values():
        if old.checkpoint.size > head.checkpoint.size:
            raise LogVerificationError(
                f"the log shrank: size {old.checkpoint.size} was seen before, now {head.checkpoint.size}",
                tree_size=head.checkpoint.size,
            )
    shown = ReadableSets()
    index = ReaderIndex(readership) if readership is not None else None
    pending_since = _replay(client, head.checkpoint.size, roots, remembered, quorum_size, shown, index)
    _check_quorum_kept(client, saved, log_key, quorum)
    report = RemoteReport(
        head.checkpoint.size,
        head.checkpoint.root_hash,
        tuple(sorted(ids)) if quorum_size is not None else (),
        remembered["checkpoint"].checkpoint.size if "checkpoint" in remembered else None,
        quorum_size=quorum_size,
        pending_entries=head.checkpoint.size - (quorum_size or 0),
        pending_since=pending_since,
        pinned_size=remembered["pinned"].checkpoint.size if "pinned" in remembered else None,
        withheld=shown.withheld,
        readable=tuple(shown.summary()),
    )
    _check_pending(report, quorum, now or datetime.now(UTC))
    if state is not None:
        lines = [NoteSignature.parse_line(c.rstrip("\n")) for c in response.cosignatures]
        quorum_note = with_cosignatures(top.note.to_bytes(), lines) if quorum_size is not None else None
        saved.with_notes(checkpoint=head.note.to_bytes(), quorum=quorum_note).save(state)
    return report


def _remembered(
    saved: VerifierState, log_key: Ed25519Verifier, quorum: Quorum
) -> dict[str, SignedCheckpoint]:
    found = {}
    for what in ("checkpoint", "quorum", "pinned"):
        note = getattr(saved, what)
        if note is None:
            continue
        try:
            found[what] = quorum.open(note, log_key)
        except AuditError as exc:
            raise LogVerificationError(
                f"the remembered {what} checkpoint is not this log's: {exc.message}"
            ) from None
    return found


def _replay(
    client: AuditClient,
    size: int,
    roots: dict[int, bytes],
    remembered: dict[str, SignedCheckpoint],
    quorum_size: int | None,
    shown: ReadableSets,
    index: ReaderIndex | None,
) -> datetime | None:
    """Hash every entry, checking each expected root at its size; when the first pending entry was logged."""
    expected = [(s, r, "the checkpoint's root") for s, r in roots.items()]
    expected += [
        (c.checkpoint.size, c.checkpoint.root_hash, f"the {w} one seen before") for w, c in remembered.items()
    ]
    tree = CompactRange()
    pending_since = None

    def check() -> None:
        for at_size, root, what in expected:
            if at_size == tree.size and tree.root() != root:
                raise LogVerificationError(
                    f"the history was rewritten: the entries give another tree of size {at_size} than {what}",
                    tree_size=at_size,
                )

    check()
    for entry in client.entries(0, size):
        if tree.size >= (quorum_size or 0) and pending_since is None and not entry.withheld:
            # The first pending entry this officer may read (a withheld one shows no time).
            pending_since = _logged_at(entry.data)
        leaf = entry_leaf(entry)
        if entry.withheld:
            shown.add_withheld()
        elif index is not None:
            # Judged as the gateway judges it, in log order (a query's later entries need its decision).
            shown.add(entry.index, leaf, index.readers(entry.data))
        tree.append(leaf)
        check()
    return pending_since


def _logged_at(data: bytes) -> datetime | None:
    try:
        return datetime.fromisoformat(decode_event(data).at.replace("Z", "+00:00"))
    except (AuditError, ValueError):
        return None


def _check_quorum_kept(
    client: AuditClient, saved: VerifierState, log_key: Ed25519Verifier, quorum: Quorum
) -> None:
    if saved.quorum is None:
        return
    before = quorum.open(saved.quorum, log_key)
    size = before.checkpoint.size
    now = client.checkpoint(size)
    names = {NoteSignature.parse_line(c.rstrip("\n")).name for c in now.cosignatures}
    gone = sorted({c.name for c in note_cosignatures(saved.quorum, log_key.name)} - names)
    if gone:
        raise LogVerificationError(
            f"checkpoint {size} carried a witness quorum when you verified it before, but the gateway "
            f"no longer shows the cosignature(s) of {', '.join(gone)}",
            tree_size=size,
            hint="cosignatures are deleted to hide a rewritten history: report it to the other parties",
        )


def _check_pending(report: RemoteReport, quorum: Quorum, now: datetime) -> None:
    if not report.pending_entries or report.pending_since is None:
        return
    waited = (now - report.pending_since).total_seconds()
    if waited > quorum.max_delay.total_seconds():
        where = (
            "no checkpoint"
            if report.quorum_size is None
            else f"nothing after checkpoint {report.quorum_size}"
        )
        raise LogVerificationError(
            f"{report.pending_entries} entries are not covered by a witness quorum: {where} carries one, "
            f"and the oldest waiting was logged {waited:.0f} s ago, past the bound of "
            f"{quorum.max_delay.total_seconds():g} s",
            tree_size=report.quorum_size,
            hint="a witness is down, or the witnesses were shown different histories (a split view)",
        )
