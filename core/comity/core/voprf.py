"""RFC 9497 verifiable OPRF (VOPRF mode, suite ristretto255-SHA512) over libsodium.

The group arithmetic is libsodium's (``crypto_core_ristretto255_*``,
``crypto_scalarmult_ristretto255*``) through the ``pysodium`` bindings; this module holds only
the protocol of RFC 9497: the context string, hashing to the group and to scalars
(RFC 9380 ``expand_message_xmd`` with SHA-512), key derivation, blinding, evaluation, the
DLEQ proof (section 2.2) and finalisation. Section numbers below are RFC 9497's.

Roles: the node is the *server* (it holds ``sk``, publishes ``pk``, evaluates blinded
elements and proves it used ``sk``); the requester is the *client* (it blinds, verifies the
proof, unblinds and finalises); the gateway only re-computes a blinded element from the
selector and the blind to check that they match (:func:`blind_with`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

import pysodium

__all__ = [
    "ELEMENT_LENGTH",
    "OUTPUT_LENGTH",
    "PROOF_LENGTH",
    "SCALAR_LENGTH",
    "InvalidInput",
    "InvalidProof",
    "KeyPair",
    "VoprfError",
    "blind",
    "blind_evaluate",
    "blind_with",
    "derive_key_pair",
    "evaluate",
    "finalize",
    "generate_key_pair",
    "hash_to_group",
    "verify_proof",
]

#: Serialised sizes for ristretto255-SHA512 (section 4.1).
ELEMENT_LENGTH = 32
SCALAR_LENGTH = 32
PROOF_LENGTH = 2 * SCALAR_LENGTH
OUTPUT_LENGTH = 64

_MODE_VOPRF = 0x01
_IDENTIFIER = b"ristretto255-SHA512"
# Section 3.1: contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier.
CONTEXT_STRING = b"OPRFV1-" + bytes([_MODE_VOPRF]) + b"-" + _IDENTIFIER
_DST_HASH_TO_GROUP = b"HashToGroup-" + CONTEXT_STRING
_DST_HASH_TO_SCALAR = b"HashToScalar-" + CONTEXT_STRING
_DST_DERIVE_KEY_PAIR = b"DeriveKeyPair" + CONTEXT_STRING
_DST_SEED = b"Seed-" + CONTEXT_STRING
_SHA512_BLOCK = 128
_SHA512_OUT = 64
_IDENTITY = bytes(ELEMENT_LENGTH)


class VoprfError(ValueError):
    """Base of this module's errors."""


class InvalidInput(VoprfError):
    """An input hashes to the identity, or an element or scalar is not a valid encoding."""


class InvalidProof(VoprfError):
    """The server's DLEQ proof does not show that its published key made the evaluations."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A server key: ``sk`` a scalar, ``pk = sk·G`` (both serialised, 32 bytes)."""

    sk: bytes
    pk: bytes


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def _framed(data: bytes) -> bytes:
    """``I2OSP(len(data), 2) || data``, the length prefix used throughout section 2.2 and 3.3."""
    return _i2osp(len(data), 2) + data


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1 with SHA-512 (DSTs here are all shorter than 255 bytes)."""
    ell = -(-length // _SHA512_OUT)
    if ell > 255 or length > 65535 or len(dst) > 255:
        raise VoprfError("expand_message_xmd: requested length or DST too long")
    dst_prime = dst + _i2osp(len(dst), 1)
    msg_prime = bytes(_SHA512_BLOCK) + msg + _i2osp(length, 2) + b"\x00" + dst_prime
    b0 = hashlib.sha512(msg_prime).digest()
    b = [hashlib.sha512(b0 + b"\x01" + dst_prime).digest()]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b0, b[-1], strict=True))
        b.append(hashlib.sha512(mixed + _i2osp(i, 1) + dst_prime).digest())
    return b"".join(b)[:length]


def hash_to_group(msg: bytes) -> bytes:
    """Section 4.1: ristretto255's one-way map of 64 uniform bytes (libsodium ``from_hash``)."""
    return bytes(pysodium.crypto_core_ristretto255_from_hash(expand_message_xmd(msg, _DST_HASH_TO_GROUP, 64)))


def _hash_to_scalar(msg: bytes, dst: bytes = _DST_HASH_TO_SCALAR) -> bytes:
    """Section 4.1: 64 uniform bytes reduced modulo the group order."""
    return bytes(pysodium.crypto_core_ristretto255_scalar_reduce(expand_message_xmd(msg, dst, 64)))


def _mul(scalar: bytes, element: bytes) -> bytes:
    try:
        return bytes(pysodium.crypto_scalarmult_ristretto255(scalar, element))
    except ValueError:  # libsodium refuses a product that is the identity
        raise InvalidInput("a scalar multiplication gave the identity element") from None


def _mul_base(scalar: bytes) -> bytes:
    try:
        return bytes(pysodium.crypto_scalarmult_ristretto255_base(scalar))
    except ValueError:
        raise InvalidInput("a scalar multiplication gave the identity element") from None


def _add(p: bytes, q: bytes) -> bytes:
    return bytes(pysodium.crypto_core_ristretto255_add(p, q))


def _scalar_mul(x: bytes, y: bytes) -> bytes:
    return bytes(pysodium.crypto_core_ristretto255_scalar_mul(x, y))


def _scalar_sub(x: bytes, y: bytes) -> bytes:
    return bytes(pysodium.crypto_core_ristretto255_scalar_sub(x, y))


def _random_scalar() -> bytes:
    # Rejection of zero: libsodium's scalar_random never returns 0, checked anyway (section 4.1).
    while True:
        s = bytes(pysodium.crypto_core_ristretto255_scalar_random())
        if s != bytes(SCALAR_LENGTH):
            return s


def check_element(element: bytes, *, what: str = "element") -> bytes:
    """DeserializeElement (section 4.1): a canonical ristretto255 encoding, not the identity."""
    if len(element) != ELEMENT_LENGTH:
        raise InvalidInput(f"{what} must be {ELEMENT_LENGTH} bytes, got {len(element)}")
    if hmac.compare_digest(element, _IDENTITY) or not pysodium.crypto_core_ristretto255_is_valid_point(
        element
    ):
        raise InvalidInput(f"{what} is not a valid ristretto255 element")
    return element


def check_scalar(scalar: bytes, *, what: str = "scalar") -> bytes:
    """DeserializeScalar (section 4.1): canonical (below the group order) and not zero."""
    if len(scalar) != SCALAR_LENGTH:
        raise InvalidInput(f"{what} must be {SCALAR_LENGTH} bytes, got {len(scalar)}")
    reduced = bytes(pysodium.crypto_core_ristretto255_scalar_reduce(scalar + bytes(SCALAR_LENGTH)))
    if not hmac.compare_digest(reduced, scalar) or scalar == bytes(SCALAR_LENGTH):
        raise InvalidInput(f"{what} is not a canonical non-zero scalar")
    return scalar


# ---------------------------------------------------------------- keys (section 3.2)


def derive_key_pair(seed: bytes, info: bytes) -> KeyPair:
    """DeriveKeyPair (section 3.2.1): a deterministic key from a 32-byte seed and an info string."""
    if len(seed) != 32:
        raise VoprfError("the key seed must be 32 bytes")
    derive_input = seed + _framed(info)
    for counter in range(256):
        sk = _hash_to_scalar(derive_input + _i2osp(counter, 1), _DST_DERIVE_KEY_PAIR)
        if sk != bytes(SCALAR_LENGTH):
            return KeyPair(sk, _mul_base(sk))
    raise VoprfError("DeriveKeyPairError")  # pragma: no cover - probability 2^-2040


def generate_key_pair() -> KeyPair:
    """A fresh random server key (section 3.2)."""
    sk = _random_scalar()
    return KeyPair(sk, _mul_base(sk))


# ---------------------------------------------------------------- DLEQ proofs (section 2.2)


def _composite_scalars(b: bytes, cs: Sequence[bytes], ds: Sequence[bytes]) -> list[bytes]:
    seed = hashlib.sha512(_framed(b) + _framed(_DST_SEED)).digest()
    return [
        _hash_to_scalar(_framed(seed) + _i2osp(i, 2) + _framed(c) + _framed(d) + b"Composite")
        for i, (c, d) in enumerate(zip(cs, ds, strict=True))
    ]


def _sum(points: Sequence[bytes]) -> bytes:
    total = points[0]
    for p in points[1:]:
        total = _add(total, p)
    return total


def _challenge(b: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes) -> bytes:
    transcript = b"".join(_framed(x) for x in (b, m, z, t2, t3)) + b"Challenge"
    return _hash_to_scalar(transcript)


def generate_proof(
    k: bytes, b: bytes, cs: Sequence[bytes], ds: Sequence[bytes], *, r: bytes | None = None
) -> bytes:
    """GenerateProof (section 2.2.1) with ComputeCompositesFast; ``r`` only for test vectors."""
    scalars = _composite_scalars(b, cs, ds)
    m = _sum([_mul(d, c) for d, c in zip(scalars, cs, strict=True)])
    z = _mul(k, m)
    r = r if r is not None else _random_scalar()
    c = _challenge(b, m, z, _mul_base(r), _mul(r, m))
    s = _scalar_sub(r, _scalar_mul(c, k))
    return c + s


def verify_proof(b: bytes, cs: Sequence[bytes], ds: Sequence[bytes], proof: bytes) -> None:
    """VerifyProof (section 2.2.2): raises :class:`InvalidProof` unless ``ds[i] = k·cs[i]`` for
    the ``k`` of ``b = k·G``."""
    if len(proof) != PROOF_LENGTH or not cs or len(cs) != len(ds):
        raise InvalidProof("the proof or the evaluated elements have the wrong shape")
    try:
        c = check_scalar(proof[:SCALAR_LENGTH], what="proof challenge")
        s = proof[SCALAR_LENGTH:]
        if s != bytes(SCALAR_LENGTH):
            check_scalar(s, what="proof response")
        scalars = _composite_scalars(b, cs, ds)
        m = _sum([_mul(d, x) for d, x in zip(scalars, cs, strict=True)])
        z = _sum([_mul(d, x) for d, x in zip(scalars, ds, strict=True)])
        t2 = _add(_mul_base(s), _mul(c, b))
        t3 = _add(_mul(s, m), _mul(c, z))
    except InvalidInput as exc:
        raise InvalidProof(f"the proof does not verify: {exc}") from None
    if not hmac.compare_digest(_challenge(b, m, z, t2, t3), c):
        raise InvalidProof("the proof does not show the evaluations were made with the published key")


# ---------------------------------------------------------------- protocol (section 3.3.2)


def blind_with(msg: bytes, blind_scalar: bytes) -> bytes:
    """The blinded element for ``msg`` under a given blind: ``blind · HashToGroup(msg)``."""
    check_scalar(blind_scalar, what="blind")
    element = hash_to_group(msg)
    if hmac.compare_digest(element, _IDENTITY):  # pragma: no cover - negligible probability
        raise InvalidInput("the input maps to the identity element")
    return _mul(blind_scalar, element)


def blind(msg: bytes) -> tuple[bytes, bytes]:
    """Blind (section 3.3.2): a fresh random blind and the blinded element, ``(blind, element)``."""
    blind_scalar = _random_scalar()
    return blind_scalar, blind_with(msg, blind_scalar)


def blind_evaluate(
    key: KeyPair, blinded: Sequence[bytes], *, r: bytes | None = None
) -> tuple[list[bytes], bytes]:
    """BlindEvaluateBatch: ``k · element`` for each blinded element, and one DLEQ proof for all."""
    if not blinded:
        raise InvalidInput("nothing to evaluate")
    elements = [check_element(e, what="blinded element") for e in blinded]
    evaluated = [_mul(key.sk, e) for e in elements]
    return evaluated, generate_proof(key.sk, key.pk, elements, evaluated, r=r)


def _finalize_hash(msg: bytes, unblinded: bytes) -> bytes:
    return hashlib.sha512(_framed(msg) + _framed(unblinded) + b"Finalize").digest()


def finalize(
    pk: bytes,
    inputs: Sequence[bytes],
    blinds: Sequence[bytes],
    blinded: Sequence[bytes],
    evaluated: Sequence[bytes],
    proof: bytes,
) -> list[bytes]:
    """FinalizeBatch (section 3.3.2): verify the proof against ``pk``, unblind, hash; the outputs."""
    if not (len(inputs) == len(blinds) == len(blinded) == len(evaluated)):
        raise InvalidProof("the evaluation does not answer every blinded element")
    try:
        elements = [check_element(e, what="evaluated element") for e in evaluated]
        check_element(pk, what="public key")
    except InvalidInput as exc:
        raise InvalidProof(str(exc)) from None
    verify_proof(pk, list(blinded), elements, proof)
    outputs = []
    for msg, b, e in zip(inputs, blinds, elements, strict=True):
        inverse = bytes(pysodium.crypto_core_ristretto255_scalar_invert(b))
        outputs.append(_finalize_hash(msg, _mul(inverse, e)))
    return outputs


def evaluate(key: KeyPair, msg: bytes) -> bytes:
    """Evaluate (section 3.3.2): the PRF output computed directly by the key holder."""
    element = hash_to_group(msg)
    return _finalize_hash(msg, _mul(key.sk, element))
