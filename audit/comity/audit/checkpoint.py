"""C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint) bodies, signed as C2SP notes.

A checkpoint body is the origin line, the tree size in decimal, the base64 root hash, then
optional non-empty extension lines; every line ends with a newline. The log signs it with its
Ed25519 note key, whose name is the origin; witnesses add cosignature lines.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from comity.audit.cosignature import CosignatureVerifier
from comity.audit.errors import InvalidNote, UnverifiedNote
from comity.audit.note import Ed25519Signer, Ed25519Verifier, Note, NoteSignature, open_note
from comity.audit.rfc6962 import HASH_SIZE

__all__ = ["Checkpoint", "SignedCheckpoint", "open_checkpoint", "sign_checkpoint", "with_cosignatures"]

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: which log (origin), how many entries, and their Merkle root."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise InvalidNote("a checkpoint's origin must be one non-empty line")
        if self.size < 0 or len(self.root_hash) != HASH_SIZE:
            raise InvalidNote(f"a checkpoint needs a size >= 0 and a {HASH_SIZE}-byte root hash")
        if any(not line or "\n" in line for line in self.extensions):
            raise InvalidNote("checkpoint extension lines must be non-empty single lines")

    def to_text(self) -> str:
        """The note text: the body lines, each ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body, strictly: a decimal size without leading zeros, a 32-byte hash."""
        if not text.endswith("\n"):
            raise InvalidNote("a checkpoint body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise InvalidNote("a checkpoint body needs an origin, a tree size and a root hash line")
        origin, size, root = lines[:3]
        if not _DECIMAL.fullmatch(size):
            raise InvalidNote("a checkpoint's tree size must be a decimal number without leading zeros")
        try:
            root_hash = base64.b64decode(root, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidNote("a checkpoint's root hash is not valid base64") from None
        return cls(origin, int(size), root_hash, tuple(lines[3:]))


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint whose log signature verified, with the note it came in and its cosignatures."""

    checkpoint: Checkpoint
    note: Note
    cosignatures: tuple[NoteSignature, ...] = ()

    @property
    def text(self) -> str:
        """The note text (the checkpoint body) the signatures cover."""
        return self.note.text


def sign_checkpoint(checkpoint: Checkpoint, signer: Ed25519Signer) -> bytes:
    """The signed note of ``checkpoint``; the signer's name must be the checkpoint's origin."""
    if signer.name != checkpoint.origin:
        raise InvalidNote(f"the log key is named {signer.name!r}, but the origin is {checkpoint.origin!r}")
    text = checkpoint.to_text()
    return Note(text, (signer.sign(text),)).to_bytes()


def open_checkpoint(
    data: bytes,
    log_key: Ed25519Verifier,
    *,
    witnesses: Sequence[CosignatureVerifier] = (),
) -> SignedCheckpoint:
    """Verify a signed checkpoint note: the log's signature first, then parse the body.

    Cosignature lines from ``witnesses`` must verify (a bad one raises); the others are
    ignored. Raises :class:`UnverifiedNote` or :class:`InvalidNote`.
    """
    note = open_note(data, [log_key, *witnesses])
    if not any(s.name == log_key.name and s.key_id == log_key.key_id for s in note.signatures):
        raise UnverifiedNote(f"the checkpoint is not signed by the log key {log_key.name!r}")
    checkpoint = Checkpoint.from_text(note.text)
    if checkpoint.origin != log_key.name:
        raise UnverifiedNote(f"the checkpoint's origin {checkpoint.origin!r} is not the log {log_key.name!r}")
    cosignatures = tuple(s for s in note.signatures if s.key_id != log_key.key_id or s.name != log_key.name)
    return SignedCheckpoint(checkpoint, note, cosignatures)


def with_cosignatures(data: bytes, cosignatures: Sequence[NoteSignature]) -> bytes:
    """The signed note ``data`` with extra signature lines appended (duplicates dropped)."""
    note = Note.parse(data)
    lines = list(note.signatures)
    lines += [c for c in cosignatures if c not in lines]
    return Note(note.text, tuple(lines)).to_bytes()
