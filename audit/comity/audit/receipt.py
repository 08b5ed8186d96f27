"""Receipt verification for the SDK and offline tools: pure functions, no storage imports.

A receipt says: these entries are in the log, proven by inclusion proofs against one signed
checkpoint (optionally cosigned by witnesses). :func:`verify_receipt` checks, in order: the
log's signature on the checkpoint, the required witness cosignatures, then each entry's proof.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from comity.audit.checkpoint import SignedCheckpoint, open_checkpoint
from comity.audit.cosignature import CosignatureVerifier
from comity.audit.errors import InvalidProof, UnverifiedNote
from comity.audit.note import Ed25519Verifier
from comity.audit.proof import verify_inclusion
from comity.audit.rfc6962 import hash_leaf

__all__ = ["ReceiptEntry", "verify_receipt"]


@dataclass(frozen=True, slots=True)
class ReceiptEntry:
    """One logged entry and its inclusion proof; ``tree_size`` (if set) must be the checkpoint's."""

    entry: bytes
    leaf_index: int
    inclusion: Sequence[bytes]
    tree_size: int | None = None


def verify_receipt(
    entries: Sequence[ReceiptEntry],
    checkpoint: bytes,
    *,
    log_key: Ed25519Verifier | str,
    witnesses: Sequence[CosignatureVerifier | str] = (),
    min_cosignatures: int = 0,
) -> SignedCheckpoint:
    """Verify that every entry is in the log at the signed (and cosigned) checkpoint.

    ``log_key`` and ``witnesses`` may be verifier keys in text form. Raises
    :class:`UnverifiedNote` (signature, too few cosignatures) or :class:`InvalidProof`.
    Returns the verified checkpoint.
    """
    log = Ed25519Verifier.from_text(log_key) if isinstance(log_key, str) else log_key
    cosigners = [CosignatureVerifier.from_text(w) if isinstance(w, str) else w for w in witnesses]
    signed = open_checkpoint(checkpoint, log, witnesses=cosigners)
    if len({c.name for c in signed.cosignatures}) < min_cosignatures:
        raise UnverifiedNote(
            f"the checkpoint has {len(signed.cosignatures)} witness cosignatures; "
            f"{min_cosignatures} are required"
        )
    if not entries:
        raise InvalidProof("the receipt proves no entry")
    head = signed.checkpoint
    for number, item in enumerate(entries):
        if item.tree_size is not None and item.tree_size != head.size:
            raise InvalidProof(
                f"receipt entry {number} is proven against size {item.tree_size}, not {head.size}"
            )
        verify_inclusion(hash_leaf(item.entry), item.leaf_index, head.size, item.inclusion, head.root_hash)
    return signed
