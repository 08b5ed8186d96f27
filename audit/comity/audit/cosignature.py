"""C2SP tlog-cosignature (https://c2sp.org/tlog-cosignature): timestamped Ed25519 cosignatures.

A witness signs ``"cosignature/v1\\n" || "time <t>\\n" || checkpoint note text`` and publishes a
note signature line whose bytes are ``key ID || u64 timestamp (big-endian) || signature``, with
key ID ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from comity.audit.errors import InvalidNote, UnverifiedNote
from comity.audit.note import NoteSignature, check_key_name, compute_key_id, parse_vkey, vkey_text

__all__ = [
    "ALG_COSIGNATURE_V1",
    "CosignatureSigner",
    "CosignatureVerifier",
    "cosignature_timestamp",
    "cosigned_message",
]

#: signed-note signature type 0x04: timestamped Ed25519 witness cosignatures.
ALG_COSIGNATURE_V1 = 0x04
#: tlog-cosignature: "timestamp ... MUST NOT exceed 2^63 - 1".
MAX_TIMESTAMP = 2**63 - 1
ED25519_SIGNATURE_SIZE = 64


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes an Ed25519 cosignature covers: header line, time line, whole checkpoint body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InvalidNote(f"a cosignature timestamp must be between 0 and 2^63-1, not {timestamp}")
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()


def cosignature_timestamp(signature: NoteSignature) -> int:
    """The POSIX time a cosignature line claims it was made."""
    if len(signature.signature) != 8 + ED25519_SIGNATURE_SIZE:
        raise InvalidNote(f"the cosignature by {signature.name!r} is not a timestamped Ed25519 signature")
    return int.from_bytes(signature.signature[:8], "big")


@dataclass(frozen=True, slots=True)
class CosignatureVerifier:
    """A witness's public key, as a note verifier of type 0x04."""

    name: str
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> int:
        """The key ID this witness's cosignature lines carry."""
        return compute_key_id(self.name, ALG_COSIGNATURE_V1, self.public_key.public_bytes_raw())

    def verify(self, text: str, signature: NoteSignature) -> None:
        """Raise :class:`UnverifiedNote` unless ``signature`` cosigns the checkpoint ``text``."""
        timestamp = cosignature_timestamp(signature)
        try:
            self.public_key.verify(signature.signature[8:], cosigned_message(text, timestamp))
        except InvalidSignature:
            raise UnverifiedNote(f"the cosignature by witness {self.name!r} does not verify") from None

    def to_text(self) -> str:
        """The verifier key in the signed-note text form, type 0x04."""
        return vkey_text(self.name, ALG_COSIGNATURE_V1, self.public_key.public_bytes_raw())

    @classmethod
    def from_text(cls, text: str) -> CosignatureVerifier:
        """Parse ``<name>+<hex key ID>+base64(0x04 || key)``."""
        return cls(*parse_vkey(text, alg=ALG_COSIGNATURE_V1))


@dataclass(frozen=True, slots=True)
class CosignatureSigner:
    """A witness's private key: cosigns checkpoints as ``name``."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        check_key_name(self.name)

    @property
    def verifier(self) -> CosignatureVerifier:
        """The matching verifier."""
        return CosignatureVerifier(self.name, self.private_key.public_key())

    def cosign(self, checkpoint_text: str, *, timestamp: int) -> NoteSignature:
        """A cosignature line over the checkpoint note text, made at POSIX time ``timestamp``."""
        signature = self.private_key.sign(cosigned_message(checkpoint_text, timestamp))
        return NoteSignature(self.name, self.verifier.key_id, timestamp.to_bytes(8, "big") + signature)
