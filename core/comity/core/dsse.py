"""DSSE envelopes: sign bytes, then parse.

An envelope carries a payload type, the payload bytes and signatures over the DSSE
pre-authentication encoding (PAE). A verifier checks a signature over the exact bytes it
received *before* anything parses them, so no component ever re-serialises a payload and
expects the same bytes. Spec: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from comity.core.errors import InvalidArgument, Unauthenticated
from comity.core.keys import SigningKey, VerifyingKey
from comity.v1 import comity_pb2 as pb

__all__ = [
    "PAYLOAD_DECISION",
    "PAYLOAD_EMERGENCY_VALIDATION",
    "PAYLOAD_NODE_DECISION",
    "PAYLOAD_NODE_STATEMENT",
    "PAYLOAD_ORDER",
    "PAYLOAD_QUERY",
    "EnvelopeError",
    "UnknownSigner",
    "pae",
    "payload_digest",
    "sign_envelope",
    "verify_envelope",
]

PAYLOAD_QUERY = "application/vnd.comity.query+protobuf"
PAYLOAD_ORDER = "application/vnd.comity.legal-order+protobuf"
PAYLOAD_DECISION = "application/vnd.comity.gateway-decision+protobuf"
PAYLOAD_NODE_STATEMENT = "application/vnd.comity.node-statement+protobuf"
PAYLOAD_NODE_DECISION = "application/vnd.comity.node-decision+protobuf"
PAYLOAD_EMERGENCY_VALIDATION = "application/vnd.comity.emergency-validation+protobuf"

# An envelope with more signatures than this is refused before any is checked: verifying is
# the expensive step, and no Comity object needs more than a couple.
MAX_SIGNATURES = 4


class EnvelopeError(Unauthenticated):
    """An envelope's signature is missing, malformed or does not verify."""


class UnknownSigner(EnvelopeError):
    """No signature on the envelope is by a key the verifier knows."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``"DSSEv1" SP len(type) SP type SP len(body) SP body``."""
    t = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def payload_digest(envelope: pb.Envelope) -> bytes:
    """SHA-256 over the envelope's payload bytes: how receipts and decisions name a query."""
    return hashlib.sha256(envelope.payload).digest()


def sign_envelope(payload_type: str, payload: bytes, key: SigningKey) -> pb.Envelope:
    """Wrap ``payload`` in an envelope signed by ``key``."""
    sig = key.sign(pae(payload_type, payload))
    return pb.Envelope(
        payload_type=payload_type, payload=payload, signatures=[pb.Signature(keyid=key.key_id, sig=sig)]
    )


def verify_envelope(
    envelope: pb.Envelope,
    *,
    payload_type: str,
    keys: Mapping[str, VerifyingKey] | Mapping[str, tuple[VerifyingKey, ...]],
    what: str = "envelope",
) -> tuple[bytes, VerifyingKey]:
    """Check that one signature is by a known key over the exact payload; return (payload, signer).

    Checks, in order: the payload type is the one expected (an order cannot pass for a query);
    the envelope is signed; the signature's key id names a key in ``keys``; the signature
    verifies over PAE(type, payload). A key id may name several keys (a rotation's overlap,
    ``comity.core.keyhistory.KeysInForce``): any of them will do. Raises :class:`EnvelopeError`
    (UNAUTHENTICATED) or :class:`InvalidArgument` for a malformed envelope.
    """
    if envelope.payload_type != payload_type:
        raise InvalidArgument(f"{what}: payload type is {envelope.payload_type!r}, expected {payload_type!r}")
    if not envelope.signatures:
        raise EnvelopeError(f"{what} is not signed", hint="sign it with the registered key")
    if len(envelope.signatures) > MAX_SIGNATURES:
        raise InvalidArgument(
            f"{what} carries {len(envelope.signatures)} signatures; at most {MAX_SIGNATURES}"
        )
    message = pae(envelope.payload_type, envelope.payload)
    known = [s for s in envelope.signatures if s.keyid in keys]
    if not known:
        names = ", ".join(repr(s.keyid) for s in envelope.signatures)
        raise UnknownSigner(f"{what} is signed by {names}, which the federation does not list")
    for sig in known:
        listed = keys[sig.keyid]
        for key in listed if isinstance(listed, tuple) else (listed,):
            try:
                key.verify(sig.sig, message)
            except Unauthenticated:
                continue
            return envelope.payload, key
    raise EnvelopeError(f"{what}: signature by {known[0].keyid!r} does not verify over the payload")
