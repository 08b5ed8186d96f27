"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 signatures.

A signed note is a UTF-8 text ending in a newline, a blank line, then one or more signature
lines ``— <key name> base64(key ID || signature)``. The key ID is the first four bytes of
``SHA-256(key name || 0x0A || signature type || public key)``. Verifier keys travel in the
spec's text form ``<name>+<hex key ID>+base64(signature type || public key)``.

Only signature types 0x01 (Ed25519 over the note text, here) and 0x04 (timestamped Ed25519
cosignatures, ``cosignature.py``) are supported; other lines are kept but never trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from comity.audit.errors import InvalidNote, UnverifiedNote

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Ed25519Signer",
    "Ed25519Verifier",
    "Note",
    "NoteSignature",
    "NoteVerifier",
    "compute_key_id",
    "open_note",
    "sign_note",
]

#: signed-note "Signature types": 0x01 is Ed25519 over the note text.
ALG_ED25519 = 0x01
#: The spec asks verifiers to accept at least 16 signatures; a log with many witnesses needs more.
MAX_SIGNATURES = 64
#: Em dash (U+2014) and a space open every signature line.
SIGNATURE_PREFIX = "\u2014 "
_HEX_KEY_ID = re.compile("[0-9a-f]{8}")


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidNote(f"{what} is not valid base64") from None


def check_key_name(name: str) -> None:
    """Key names are non-empty and contain no Unicode spaces and no '+' (signed-note, Format)."""
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise InvalidNote(f"key name {name!r} must be non-empty, without spaces or '+'")


def compute_key_id(name: str, alg: int, public_key: bytes) -> int:
    """``SHA-256(name || 0x0A || alg || public key)[:4]`` as a big-endian uint32."""
    check_key_name(name)
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: who (name, key ID) and the signature bytes after the key ID."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """The signature line, newline-terminated, as it appears in a note."""
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"

    @classmethod
    def parse_line(cls, line: str) -> NoteSignature:
        """Parse ``— <name> <base64>`` (without its newline)."""
        if not line.startswith(SIGNATURE_PREFIX):
            raise InvalidNote("a signature line must start with an em dash and a space")
        name, sep, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        check_key_name(name)
        blob = _b64decode(encoded, f"the signature by {name!r}")
        if not sep or len(blob) < 5:
            raise InvalidNote(f"the signature by {name!r} is too short to hold a key ID and a signature")
        return cls(name, int.from_bytes(blob[:4], "big"), blob[4:])


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise InvalidNote("a note's text must end with a newline")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise InvalidNote("a note must not contain control characters other than newline")


@dataclass(frozen=True, slots=True)
class Note:
    """A note: its text (with the final newline) and its signature lines, none of them trusted yet."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_bytes(self) -> bytes:
        """The note's wire form: text, blank line, signature lines."""
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()

    @classmethod
    def parse(cls, data: bytes) -> Note:
        """Split a signed note into text and signature lines; checks form only, not signatures."""
        try:
            whole = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidNote("a signed note must be valid UTF-8") from None
        _check_text(whole)
        # The text is separated from the signatures by the last empty line.
        split = whole.rfind("\n\n")
        if split < 0:
            raise InvalidNote("a signed note needs a blank line before its signatures")
        text, block = whole[: split + 1], whole[split + 2 :]
        lines = block.split("\n")[:-1]
        if not lines:
            raise InvalidNote("a signed note needs at least one signature line")
        if len(lines) > MAX_SIGNATURES:
            raise InvalidNote(f"a signed note may carry at most {MAX_SIGNATURES} signatures")
        return cls(text, tuple(NoteSignature.parse_line(line) for line in lines))


class NoteVerifier(Protocol):
    """A trusted key: its name and key ID select the signature lines it must verify."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, text: str, signature: NoteSignature) -> None:
        """Raise :class:`UnverifiedNote` unless ``signature`` is this key's over ``text``."""
        ...


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes_raw()


def vkey_text(name: str, alg: int, public_key: bytes) -> str:
    """The verifier key text form ``<name>+<hex key ID>+base64(alg || public key)``."""
    key_id = compute_key_id(name, alg, public_key)
    return f"{name}+{key_id:08x}+{base64.b64encode(bytes([alg]) + public_key).decode()}"


def parse_vkey(text: str, *, alg: int) -> tuple[str, Ed25519PublicKey]:
    """Parse a verifier key of signature type ``alg``; checks that the key ID matches the key."""
    # The base64 part may itself contain '+', so split only twice.
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not _HEX_KEY_ID.fullmatch(parts[1]):
        raise InvalidNote("a verifier key looks like '<name>+<8 lowercase hex digits>+<base64 key>'")
    name, hex_id, encoded = parts
    key_id = int(hex_id, 16)
    blob = _b64decode(encoded, f"verifier key {name!r}")
    if len(blob) != 33 or blob[0] != alg:
        raise InvalidNote(f"verifier key {name!r} is not a type {alg:#04x} Ed25519 key")
    if compute_key_id(name, alg, blob[1:]) != key_id:
        raise InvalidNote(f"verifier key {name!r}: the key ID does not match the key")
    return name, Ed25519PublicKey.from_public_bytes(blob[1:])


@dataclass(frozen=True, slots=True)
class Ed25519Verifier:
    """A note verifier for Ed25519 signatures (type 0x01) over the note text."""

    name: str
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> int:
        """The key ID signature lines by this key carry."""
        return compute_key_id(self.name, ALG_ED25519, _raw(self.public_key))

    def verify(self, text: str, signature: NoteSignature) -> None:
        """Raise :class:`UnverifiedNote` unless ``signature`` is this key's over ``text``."""
        try:
            self.public_key.verify(signature.signature, text.encode())
        except InvalidSignature:
            raise UnverifiedNote(f"the signature by {self.name!r} does not verify") from None

    def to_text(self) -> str:
        """The verifier key in the spec's text form."""
        return vkey_text(self.name, ALG_ED25519, _raw(self.public_key))

    @classmethod
    def from_text(cls, text: str) -> Ed25519Verifier:
        """Parse ``<name>+<hex key ID>+base64(0x01 || key)``."""
        return cls(*parse_vkey(text, alg=ALG_ED25519))


@dataclass(frozen=True, slots=True)
class Ed25519Signer:
    """Signs note texts as ``name`` with an Ed25519 key (type 0x01)."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        check_key_name(self.name)

    @property
    def verifier(self) -> Ed25519Verifier:
        """The matching verifier."""
        return Ed25519Verifier(self.name, self.private_key.public_key())

    @classmethod
    def from_text(cls, text: str) -> Ed25519Signer:
        """Parse a signer key in the Go note package's form ``PRIVATE+KEY+<name>+<id>+base64(0x01||seed)``."""
        prefix, _, rest = text.strip().partition("+KEY+")
        if prefix != "PRIVATE":
            raise InvalidNote("a signer key starts with 'PRIVATE+KEY+'")
        parts = rest.split("+", 2)
        if len(parts) != 3:
            raise InvalidNote("a signer key looks like 'PRIVATE+KEY+<name>+<hex key id>+<base64 key>'")
        name, hex_id, encoded = parts
        blob = _b64decode(encoded, f"signer key {name!r}")
        if len(blob) != 33 or blob[0] != ALG_ED25519:
            raise InvalidNote(f"signer key {name!r} is not an Ed25519 key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(blob[1:]))
        if f"{signer.verifier.key_id:08x}" != hex_id:
            raise InvalidNote(f"signer key {name!r}: the key ID does not match the key")
        return signer

    def sign(self, text: str) -> NoteSignature:
        """A signature line over ``text``."""
        _check_text(text)
        key_id = compute_key_id(self.name, ALG_ED25519, _raw(self.private_key.public_key()))
        return NoteSignature(self.name, key_id, self.private_key.sign(text.encode()))


def sign_note(text: str, signer: Ed25519Signer) -> bytes:
    """A signed note of ``text`` (which must end with a newline) signed by ``signer``."""
    return Note(text, (signer.sign(text),)).to_bytes()


def open_note(data: bytes, verifiers: Sequence[NoteVerifier]) -> Note:
    """Parse a signed note and verify it against trusted keys, per the spec's rules.

    Lines whose (name, key ID) match no verifier are ignored; a matching line that fails
    raises :class:`UnverifiedNote`; so does a note with no verified line. The returned note's
    ``signatures`` are only those that verified.
    """
    note = Note.parse(data)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[NoteSignature] = []
    for signature in note.signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is not None:
            verifier.verify(note.text, signature)
            verified.append(signature)
    if not verified:
        names = ", ".join(sorted({v.name for v in verifiers})) or "none"
        raise UnverifiedNote(f"the note carries no signature by a trusted key (trusted: {names})")
    return Note(note.text, tuple(verified))
