"""Witness views: what other witnesses cosigned, compared with the log a verifier checked.

A split view shows each country its own history. Each witness then cosigns only the branch it
is shown, and its latest cosigned checkpoint (signed by the log's key, cosigned by the witness:
nobody else can make one) is the proof of what it saw. A legal officer collects those views
without the gateway (each country's officer reads their own node's witness state with
``comity witness latest`` and sends the file to the others; an independent witness publishes
its own) and hands them to ``comity audit verify --witness-view``. Every view must lie on the
history just verified:

1. the view is a checkpoint of this log (under the log key its tree size calls for) carrying a
   valid cosignature by a witness the federation lists (under the key it held at that time);
2. its tree size is at most the verified log's, and the log proves (RFC 6962 consistency) that
   its tree extends the view's: same root at the same size, or a valid proof from there.

Otherwise the two checkpoints are evidence of a fork (or of a rollback of this copy of the log),
raised as :class:`ForkProven` with both notes, so the officer can show it to anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from comity.audit.checkpoint import Checkpoint
from comity.audit.errors import AuditError, InvalidProof, LogVerificationError
from comity.audit.proof import verify_consistency
from comity.audit.quorum import Quorum, SizedKeys, note_cosignatures, open_log_checkpoint

__all__ = ["ForkProven", "WitnessView", "check_witness_views", "open_witness_view"]

#: Fetches the consistency proof between two tree sizes from the log being verified.
ConsistencySource = Callable[[int, int], Sequence[bytes]]


@dataclass(frozen=True, slots=True)
class WitnessView:
    """A checkpoint of the log as one or more witnesses cosigned it."""

    witnesses: tuple[str, ...]
    checkpoint: Checkpoint
    note: bytes


class ForkProven(LogVerificationError):
    """A witness cosigned a checkpoint that the verified log does not contain: ``evidence`` shows it."""

    def __init__(self, message: str, *, evidence: bytes) -> None:
        super().__init__(
            message,
            hint="keep both checkpoints (the evidence) and tell the other parties: the log's key "
            "holder showed two histories",
        )
        self.evidence = evidence


def open_witness_view(note: bytes, *, origin: str, log_keys: SizedKeys, quorum: Quorum) -> WitnessView:
    """Verify a witness's cosigned checkpoint; raises :class:`LogVerificationError` naming what is wrong."""
    try:
        signed = open_log_checkpoint(note, origin, log_keys)
        lines = [c for c in note_cosignatures(note, origin) if c.name in {w.name for w in quorum.witnesses}]
        ids = tuple(quorum.cosigners(signed.text, [c.line() for c in lines]))
    except AuditError as exc:
        raise LogVerificationError(f"the witness view does not verify: {exc.message}") from None
    if not ids:
        raise LogVerificationError("the witness view carries no cosignature by a witness of the federation")
    return WitnessView(ids, signed.checkpoint, note)


def check_witness_views(
    views: Sequence[WitnessView],
    *,
    head: Checkpoint,
    head_note: bytes,
    consistency: ConsistencySource,
) -> None:
    """Raise :class:`ForkProven` unless every view lies on the verified history ending at ``head``."""
    for view in views:
        problem = _contradiction(view.checkpoint, head, consistency)
        if problem:
            who = ", ".join(view.witnesses)
            evidence = (
                b"# cosigned by " + who.encode() + b"\n" + view.note + b"\n# the verified log\n" + head_note
            )
            raise ForkProven(f"PROVEN FORK: witness {who} cosigned {problem}", evidence=evidence)


def _contradiction(seen: Checkpoint, head: Checkpoint, consistency: ConsistencySource) -> str:
    if seen.size > head.size:
        return f"tree size {seen.size}, beyond this log's {head.size}: this log was rolled back or forked"
    if seen.size == head.size:
        return "" if seen.root_hash == head.root_hash else f"another tree of size {seen.size} than this log's"
    try:
        proof = consistency(seen.size, head.size)
        verify_consistency(seen.size, head.size, proof, seen.root_hash, head.root_hash)
    except (InvalidProof, AuditError):
        return f"a tree of size {seen.size} that this log of size {head.size} does not extend"
    return ""
