"""Post-hoc validation of emergency orders: signed by an independent authority, verified here.

An order on the emergency track (imminent threat to life) lets a FETCH skip the hit step. The
agreement allows that only if a judicial or independent authority of the issuing country
reviews the emergency afterwards, within a deadline. That review travels as a DSSE envelope
(payload type ``PAYLOAD_EMERGENCY_VALIDATION``) around a ``comity.v1.EmergencyValidation``.
:func:`verify_validation` checks, in order:

1. a signature by a registered authority's key over the exact payload bytes;
2. the bytes are an EmergencyValidation naming an order id and a 32-byte order digest;
3. it names the authority that signed it, and that authority is judicial or independent (an
   administrative authority cannot review its own kind's emergency).

Whether it matches an emergency order that was actually used, and whether the authority is of
that order's country, only the gateway's record of emergency uses can tell.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import DecodeError

from comity.core.dsse import PAYLOAD_EMERGENCY_VALIDATION, sign_envelope, verify_envelope
from comity.core.errors import InvalidArgument, PermissionDenied
from comity.core.federation import Authority, Federation
from comity.core.keys import SigningKey
from comity.v1 import comity_pb2 as pb

__all__ = ["REVIEWING_KINDS", "VerifiedValidation", "sign_validation", "validation_for", "verify_validation"]

#: Authority kinds that may validate an emergency order after the fact.
REVIEWING_KINDS = frozenset({"judicial", "independent"})


@dataclass(frozen=True, slots=True)
class VerifiedValidation:
    """A verified validation, the authority that signed it, and the SHA-256 of its payload."""

    validation: pb.EmergencyValidation
    authority: Authority
    digest: bytes


def validation_for(
    order_envelope: pb.Envelope, *, authority: str, confirmed: bool, decided_at: datetime | None = None
) -> pb.EmergencyValidation:
    """The validation of the emergency order in ``order_envelope``, bound to its exact bytes.

    Raises :class:`InvalidArgument` if the envelope holds no order or the order is not an
    emergency order.
    """
    try:
        order = pb.LegalOrder.FromString(order_envelope.payload)
    except DecodeError:
        raise InvalidArgument("the envelope does not hold a LegalOrder") from None
    if not order.emergency:
        raise InvalidArgument(
            f"legal order {order.order_id!r} is not on the emergency track; "
            "only emergency orders are validated"
        )
    validation = pb.EmergencyValidation(
        order_id=order.order_id,
        order_digest=hashlib.sha256(order_envelope.payload).digest(),
        validating_authority=authority,
        confirmed=confirmed,
    )
    validation.decided_at.FromDatetime(decided_at or datetime.now(UTC))
    return validation


def sign_validation(validation: pb.EmergencyValidation, key: SigningKey) -> pb.Envelope:
    """Serialise ``validation`` once and sign exactly those bytes with the authority's ``key``."""
    return sign_envelope(PAYLOAD_EMERGENCY_VALIDATION, validation.SerializeToString(), key)


def verify_validation(envelope: pb.Envelope, federation: Federation) -> VerifiedValidation:
    """Run steps 1–3; raises :class:`InvalidArgument` or :class:`PermissionDenied` naming the check."""
    payload, signer = verify_envelope(
        envelope,
        payload_type=PAYLOAD_EMERGENCY_VALIDATION,
        keys=federation.authority_keys(),
        what="emergency validation",
    )
    try:
        validation = pb.EmergencyValidation.FromString(payload)
    except DecodeError:
        raise InvalidArgument("emergency validation payload is not an EmergencyValidation message") from None
    if not validation.order_id or len(validation.order_digest) != 32:
        raise InvalidArgument(
            "emergency validation must name the order (order_id) and its 32-byte SHA-256 (order_digest)"
        )
    authority = federation.authority(signer.key_id)
    if validation.validating_authority != authority.id:
        raise PermissionDenied(
            f"emergency validation names authority {validation.validating_authority!r} "
            f"but is signed by {authority.id!r}"
        )
    if authority.kind not in REVIEWING_KINDS:
        raise PermissionDenied(
            f"authority {authority.id!r} is {authority.kind}; an emergency order is validated by a "
            "judicial or independent authority"
        )
    return VerifiedValidation(validation, authority, hashlib.sha256(payload).digest())
