"""Signed releases of the federation file, in the manner of TUF's root role.

A format-2 file travels beside a detached DSSE envelope (``federation.toml.dsse``, DSSE's JSON
form) whose payload type is :data:`PAYLOAD_FEDERATION` and whose payload is the file's exact
bytes. Trust is established once and then carried forward:

- the **first** trusted version is the one whose SHA-256 an operator pinned
  (:func:`verify_pinned`); its own signatures prove nothing, since anyone can sign a file with
  keys that file names;
- every **next** version is trusted only if, checked in this order (:func:`verify_update`): the
  envelope is for a federation file and its payload is exactly the file's bytes; at least
  ``signing.threshold`` distinct keys of the *trusted* version's ``[signing]`` signed it; it
  then parses; it names the same federation; its version is exactly the trusted version plus
  one; and it has not expired.

Each refusal is a :class:`FederationTrustError` subclass with a stable ``check`` code and a
message saying what is wrong. Signatures are checked over the bytes before any parsing.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import grpc

from comity.core.dsse import pae
from comity.core.errors import ComityError, ConfigError, Unauthenticated
from comity.core.federation import Federation
from comity.core.federation_file import parse_federation_text
from comity.core.keys import SigningKey, VerifyingKey
from comity.core.order_file import read_envelope, write_envelope
from comity.v1 import comity_pb2 as pb

__all__ = [
    "PAYLOAD_FEDERATION",
    "BadVersion",
    "BelowThreshold",
    "EditedAfterSigning",
    "Expired",
    "FederationTrustError",
    "NotPinned",
    "PinMismatch",
    "UnsignedPredecessor",
    "envelope_path",
    "file_sha256",
    "sign_federation_file",
    "verify_pinned",
    "verify_update",
]

PAYLOAD_FEDERATION = "application/vnd.comity.federation+toml"
# Verifying is the expensive step; no federation has more signers than this.
MAX_SIGNATURES = 64


class FederationTrustError(ComityError):
    """A federation file cannot be trusted; ``check`` names the rule it broke."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    check: ClassVar[str] = "FEDERATION_UNTRUSTED"


class NotPinned(FederationTrustError):
    """A first version was offered without a pinned digest (it would certify itself)."""

    check = "FEDERATION_NOT_PINNED"


class PinMismatch(FederationTrustError):
    """The file's SHA-256 is not the pinned one."""

    check = "FEDERATION_PIN_MISMATCH"


class EditedAfterSigning(FederationTrustError):
    """The envelope signs other bytes than the file's, or is not a federation file's envelope."""

    check = "FEDERATION_EDITED_AFTER_SIGNING"


class UnsignedPredecessor(FederationTrustError):
    """The trusted version names no ``[signing]`` keys, so no later version can be trusted."""

    check = "FEDERATION_NO_SIGNING_ROLE"


class BelowThreshold(FederationTrustError):
    """Fewer valid signatures by the trusted signing keys than the threshold (forged ones count zero)."""

    check = "FEDERATION_BELOW_THRESHOLD"
    code = grpc.StatusCode.UNAUTHENTICATED


class BadVersion(FederationTrustError):
    """Not the next version of the same federation (a rollback, a replay, a jump or another federation)."""

    check = "FEDERATION_VERSION"


class Expired(FederationTrustError):
    """The file's ``expires`` has passed."""

    check = "FEDERATION_EXPIRED"


def envelope_path(file: Path) -> Path:
    """Where the envelope of ``file`` lives: beside it, named ``<file>.dsse``."""
    return file.with_name(file.name + ".dsse")


def file_sha256(data: bytes) -> str:
    """The pin of a federation file: SHA-256 of its exact bytes, lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def sign_federation_file(file: Path, key: SigningKey) -> tuple[pb.Envelope, int]:
    """Add ``key``'s signature over ``file``'s bytes to its envelope, written beside it.

    The file must load. A signature by the same key id is replaced; an envelope over other
    bytes is started afresh. Returns the envelope and how many stale signatures were dropped.
    """
    data = _read(file)
    parse_federation_text(_text(data, file), base=file.resolve().parent, source=str(file))
    target = envelope_path(file)
    envelope = pb.Envelope(payload_type=PAYLOAD_FEDERATION, payload=data)
    dropped = 0
    if target.exists():
        old = read_envelope(target)
        if old.payload_type == PAYLOAD_FEDERATION and old.payload == data:
            envelope.signatures.extend(s for s in old.signatures if s.keyid != key.key_id)
        else:
            dropped = len(old.signatures)
    envelope.signatures.append(pb.Signature(keyid=key.key_id, sig=key.sign(pae(PAYLOAD_FEDERATION, data))))
    write_envelope(envelope, target, as_json=True)
    return envelope, dropped


def verify_pinned(file: Path, pin: str | None, *, now: datetime, data: bytes | None = None) -> Federation:
    """Trust ``file`` as a first version: its SHA-256 must equal ``pin``, and it must not have expired.

    A format-1 file may be pinned too (it has no expiry); no later version can follow it.
    ``data`` is the file's bytes when the caller already read them (they are what is checked).
    """
    data = _read(file) if data is None else data
    if not pin:
        raise NotPinned(
            f"{file}: a first version is trusted only by its pinned SHA-256; its own signatures prove "
            "nothing",
            hint=f"compare the digest with the one agreed out of band, then pin it: {file_sha256(data)}",
        )
    wanted = pin.strip().lower().removeprefix("sha256:")
    if not hmac.compare_digest(file_sha256(data), wanted):
        raise PinMismatch(f"{file}: SHA-256 {file_sha256(data)} is not the pinned {wanted}")
    federation = _parse(data, file)
    _check_expiry(federation, file, now)
    return federation


def verify_update(
    trusted: Federation,
    file: Path,
    *,
    now: datetime,
    envelope: Path | None = None,
    data: bytes | None = None,
) -> Federation:
    """Trust ``file`` as the version after ``trusted``; raises a :class:`FederationTrustError`.

    ``data`` is the file's bytes when the caller already read them (they are what is checked).
    """
    data = _read(file) if data is None else data
    signed = read_envelope(envelope or envelope_path(file))
    _check_payload(signed, data, file)
    _check_threshold(trusted, signed, file)
    federation = _parse(data, file)
    _check_version(trusted, federation, file)
    _check_expiry(federation, file, now)
    return federation


def _check_payload(signed: pb.Envelope, data: bytes, file: Path) -> None:
    if signed.payload_type != PAYLOAD_FEDERATION:
        raise EditedAfterSigning(
            f"{file}: the envelope's payload type is {signed.payload_type!r}, not {PAYLOAD_FEDERATION!r}"
        )
    if not hmac.compare_digest(signed.payload, data):
        raise EditedAfterSigning(
            f"{file} differs from the bytes its envelope signs (edited after signing?)",
            hint="have the signers sign the file as it is now (comity federation sign)",
        )


def _check_threshold(trusted: Federation, signed: pb.Envelope, file: Path) -> None:
    role = trusted.signing
    if role is None:
        raise UnsignedPredecessor(
            f"the trusted version {trusted.version or '(format 1)'} of {trusted.name!r} names no [signing] "
            "keys, so no later version can be trusted",
            hint="pin the new version's SHA-256 instead",
        )
    if len(signed.signatures) > MAX_SIGNATURES:
        raise BelowThreshold(
            f"{file}: the envelope carries {len(signed.signatures)} signatures; at most {MAX_SIGNATURES}"
        )
    message = pae(signed.payload_type, signed.payload)
    valid: set[str] = set()
    for s in signed.signatures:
        key = role.keys.get(s.keyid)
        if key is not None and _verifies(key, s.sig, message):
            valid.add(s.keyid)
    if len(valid) < role.threshold:
        others = sorted({s.keyid for s in signed.signatures} - valid)
        raise BelowThreshold(
            f"{file}: {len(valid)} valid signature(s) by version {trusted.version}'s signing keys"
            f"{' (' + ', '.join(sorted(valid)) + ')' if valid else ''}; {role.threshold} needed"
            f"{'; not counted: ' + ', '.join(others) if others else ''}",
            hint=f"signing keys of version {trusted.version}: {', '.join(sorted(role.keys))}",
        )


def _verifies(key: VerifyingKey, sig: bytes, message: bytes) -> bool:
    try:
        key.verify(sig, message)
    except Unauthenticated:
        return False
    return True


def _check_version(trusted: Federation, federation: Federation, file: Path) -> None:
    if federation.name != trusted.name:
        raise BadVersion(f"{file} is federation {federation.name!r}, not the trusted {trusted.name!r}")
    if federation.version is None or trusted.version is None:
        raise BadVersion(f"{file}: only format-2 files carry a version")
    if federation.version <= trusted.version:
        raise BadVersion(
            f"{file} is version {federation.version}, not newer than the trusted version {trusted.version} "
            "(a rollback or a replay)"
        )
    if federation.version != trusted.version + 1:
        raise BadVersion(
            f"{file} is version {federation.version}; the version after {trusted.version} must be "
            f"{trusted.version + 1}",
            hint="verify the versions in between one by one",
        )


def _check_expiry(federation: Federation, file: Path, now: datetime) -> None:
    if federation.expires is None:
        return  # a format-1 file, trusted only by its pin, carries no expiry
    if now >= federation.expires:
        raise Expired(f"{file} (version {federation.version}) expired at {federation.expires.isoformat()}")


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read federation file: {exc.strerror}", source=str(file)) from None


def _text(data: bytes, file: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", source=str(file)) from None


def _parse(data: bytes, file: Path) -> Federation:
    return parse_federation_text(_text(data, file), base=file.resolve().parent, source=str(file), path=file)
