"""Ed25519 signing keys: generation, files on disk, and public keys in text form.

Every signature in Comity is Ed25519. A key has a *key id*, the name other parties use to
find its public half in the federation file (e.g. ``us.fbi/agent-007`` or ``gateway``).
Private keys are written with mode 0600 and may be encrypted with a passphrase.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from comity.core.errors import ConfigError, Unauthenticated

__all__ = [
    "KeyFileError",
    "SigningKey",
    "VerifyingKey",
    "load_public_key",
    "passphrase_from_env",
    "public_key_from_text",
    "public_key_to_text",
]

_REGENERATE = (
    "give the right passphrase (COMITY_KEY_PASSPHRASE), or restore the key from its backup; "
    "`comity init` writes new keys (their public halves must then go into the federation file)"
)


class KeyFileError(ConfigError):
    """A key file is missing, unreadable, of the wrong type, or needs a passphrase."""


def public_key_to_text(key: Ed25519PublicKey) -> str:
    """The federation file's form of a public key: ``ed25519:<base64 of the 32 raw bytes>``."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + base64.b64encode(raw).decode()


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Parse ``ed25519:<base64>``; raises :class:`KeyFileError` naming what is wrong."""
    prefix, _, body = text.strip().partition(":")
    if prefix != "ed25519" or not body:
        raise KeyFileError("a public key must look like 'ed25519:<base64 of 32 bytes>'")
    try:
        raw = base64.b64decode(body, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise KeyFileError(
            "not a valid Ed25519 public key: the text after 'ed25519:' must be the base64 of 32 bytes",
            hint="copy the key again from its owner's published key (e.g. the federation file)",
        ) from None


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """The public half of a signing key, with the id signers put in their signatures."""

    key_id: str
    public_key: Ed25519PublicKey

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise :class:`Unauthenticated` unless ``signature`` is this key's over ``message``."""
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            raise Unauthenticated(f"signature by key {self.key_id!r} does not verify") from None

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the raw public key, hex: a short way for people to compare keys."""
        raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hashlib.sha256(raw).hexdigest()

    def to_text(self) -> str:
        """The public key in the federation file's text form."""
        return public_key_to_text(self.public_key)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 private key and its key id. Parse once, keep in memory, sign many times."""

    key_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, key_id: str) -> SigningKey:
        """A fresh random key."""
        return cls(key_id, Ed25519PrivateKey.generate())

    @property
    def verifying_key(self) -> VerifyingKey:
        """The public half, under the same key id."""
        return VerifyingKey(self.key_id, self.private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature over ``message``."""
        return self.private_key.sign(message)

    def save(self, path: Path, *, passphrase: bytes | None = None) -> None:
        """Write the key as PKCS#8 PEM with mode 0600 (encrypted when ``passphrase`` is given).

        The file is created with restrictive permissions from the start, so the key is never
        readable by others, not even briefly.
        """
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        os.chmod(path, 0o600)

    @classmethod
    def load(cls, path: Path, *, key_id: str, passphrase: bytes | None = None) -> SigningKey:
        """Read a PEM private key; raises :class:`KeyFileError` with what to do when it cannot."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except TypeError:
            if passphrase is not None:
                raise KeyFileError(
                    f"key file {path} is not encrypted, but a passphrase was given",
                    hint="give no passphrase for this key (a server: unset COMITY_KEY_PASSPHRASE; a command: "
                    "drop --passphrase-env), or encrypt the key",
                ) from None
            raise KeyFileError(
                f"key file {path} is encrypted", hint="give its passphrase (COMITY_KEY_PASSPHRASE)"
            ) from None
        except ValueError:
            raise KeyFileError(
                f"key file {path} is not a readable PEM private key (damaged, another format, or "
                "encrypted under another passphrase)",
                hint=_REGENERATE,
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"key file {path} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(key_id, key)


def passphrase_from_env(variable: str = "COMITY_KEY_PASSPHRASE") -> bytes | None:
    """The passphrase for encrypted key files, from the environment only (never a config file)."""
    value = os.environ.get(variable)
    return value.encode() if value else None


def load_public_key(text_or_path: str) -> Ed25519PublicKey:
    """A public key given inline (``ed25519:...``) or as a PEM file path."""
    if text_or_path.startswith("ed25519:"):
        return public_key_from_text(text_or_path)
    try:
        data = Path(text_or_path).read_bytes()
    except OSError as exc:
        raise KeyFileError(
            f"cannot read public key file {text_or_path}: {exc.strerror}",
            hint="give the key inline as 'ed25519:<base64>' or the path of a PEM public key file",
        ) from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise KeyFileError(
            f"{text_or_path} is not a PEM public key",
            hint="give the key inline as 'ed25519:<base64>' or the path of a PEM public key file",
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{text_or_path} is not an Ed25519 public key")
    return key
