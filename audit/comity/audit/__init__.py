"""The transparency log: RFC 6962 tree, proofs, storage, checkpoints and notes, witnessing, verification.

This package top holds the pure parts (hashing, proofs, notes, checkpoints, cosignatures,
receipts, events), importable without a database driver. The storage parts live in their
modules: :mod:`comity.audit.log` (``TransparencyLog``), :mod:`comity.audit.store`
(``LogStore``), :mod:`comity.audit.witness` (``Witness``) and :mod:`comity.audit.verify`
(``verify_log``).
"""

from comity.audit.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint, sign_checkpoint
from comity.audit.commitments import CommitmentOpening, commit_selector
from comity.audit.cosignature import CosignatureSigner, CosignatureVerifier
from comity.audit.errors import (
    AuditError,
    AuditUnavailable,
    ConsistencyRequired,
    EntryNotFound,
    InconsistentLog,
    InvalidEntry,
    InvalidNote,
    InvalidProof,
    LogVerificationError,
    UnverifiedNote,
    WitnessError,
)
from comity.audit.note import Ed25519Signer, Ed25519Verifier, Note, NoteSignature, open_note, sign_note
from comity.audit.proof import verify_consistency, verify_inclusion
from comity.audit.receipt import ReceiptEntry, verify_receipt
from comity.audit.rfc6962 import EMPTY_ROOT, hash_children, hash_leaf

__all__ = [
    "EMPTY_ROOT",
    "AuditError",
    "AuditUnavailable",
    "Checkpoint",
    "CommitmentOpening",
    "ConsistencyRequired",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "EntryNotFound",
    "InconsistentLog",
    "InvalidEntry",
    "InvalidNote",
    "InvalidProof",
    "LogVerificationError",
    "Note",
    "NoteSignature",
    "ReceiptEntry",
    "SignedCheckpoint",
    "UnverifiedNote",
    "WitnessError",
    "commit_selector",
    "hash_children",
    "hash_leaf",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
    "verify_consistency",
    "verify_inclusion",
    "verify_receipt",
]
