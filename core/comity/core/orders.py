"""Legal orders: signed by an authority the federation registers, verified before use.

An order travels as a DSSE envelope (payload type ``PAYLOAD_ORDER``) around a serialised
``comity.v1.LegalOrder``. :func:`verify_order` runs these steps, in order:

1. :func:`check_order_signature`: a signature by a registered authority's key over the exact
   payload bytes (before anything parses them);
2. :func:`parse_order`: the bytes are a LegalOrder;
3. :func:`check_order_authority`: the order names the authority that signed it, that
   authority's country and its kind of authorisation (an administrative authority cannot
   issue what reads as a judicial warrant);
4. :func:`check_order_fields`: id, selectors, categories and the validity window are present;
5. :func:`~comity.core.target.check_target`: the target facts are there and well-formed (an order
   signed before they were required is refused, to be re-signed; never read with defaults);
6. :func:`check_order_window`: ``now`` is inside ``[valid_from, valid_until]``.

:func:`check_order_covers` then checks that the order covers every selector and data category
of a query. Refusals name a selector by position and type, never by value.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.message import DecodeError

from comity.core import refusals
from comity.core.dsse import PAYLOAD_ORDER, EnvelopeError, pae, sign_envelope, verify_envelope
from comity.core.errors import ComityError, InvalidArgument
from comity.core.federation import Authority, Federation
from comity.core.keys import SigningKey, VerifyingKey
from comity.core.target import check_target
from comity.v1 import comity_pb2 as pb

__all__ = [
    "Normaliser",
    "OrderVerifier",
    "VerifiedOrder",
    "check_order_authority",
    "check_order_covers",
    "check_order_fields",
    "check_order_signature",
    "check_order_window",
    "envelope_digest",
    "exact",
    "parse_order",
    "sign_order",
    "verify_order",
]

_AUTH = "INDEPENDENT_AUTHORISATION"
_BASIS = "18 U.S.C. §2523(b)(4)(D)(v)"
_DENIED = grpc.StatusCode.PERMISSION_DENIED
_INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _check(code: str, status: grpc.StatusCode, message: str) -> refusals.Check:
    return refusals.Check(code, _AUTH, status, message, _BASIS)


refusals.register(
    _check(
        "ORDER_MISSING", _DENIED, "the query carries no legal order; attach the order the authority signed"
    ),
    _check("ORDER_ENVELOPE", _INVALID, "the legal order's envelope is malformed: {detail}"),
    _check(
        "ORDER_SIGNATURE",
        grpc.StatusCode.UNAUTHENTICATED,
        "the legal order is not signed by an authority the federation registers: {detail}",
    ),
    _check("ORDER_DECODE", _INVALID, "legal order payload is not a LegalOrder message"),
    _check(
        "ORDER_AUTHORITY",
        _DENIED,
        "legal order {order_id!r} names authority {named!r} but is signed by {signer!r}",
    ),
    _check(
        "ORDER_COUNTRY",
        _DENIED,
        "legal order {order_id!r} names country {named!r}; authority {signer!r} is registered for {country}",
    ),
    _check(
        "ORDER_AUTHORISATION_TYPE",
        _DENIED,
        "legal order {order_id!r} claims a {named} authorisation; "
        "authority {signer!r} is registered as {kind}",
    ),
    _check("ORDER_ID_MISSING", _INVALID, "legal order has no order_id"),
    _check("ORDER_SELECTORS_MISSING", _INVALID, "legal order {order_id!r} lists no selectors"),
    _check("ORDER_CATEGORIES_MISSING", _INVALID, "legal order {order_id!r} must list its data categories"),
    _check(
        "ORDER_WINDOW_MISSING", _INVALID, "legal order {order_id!r} must state valid_from and valid_until"
    ),
    _check("ORDER_WINDOW_INVERTED", _INVALID, "legal order {order_id!r} ends before it starts"),
    _check("ORDER_NOT_YET_VALID", _DENIED, "legal order {order_id!r} is not valid until {valid_from}"),
    _check(
        "ORDER_EXPIRED",
        _DENIED,
        "legal order {order_id!r} expired at {valid_until}; ask the authority for a renewed order",
    ),
    _check(
        "ORDER_SELECTOR_INVALID",
        _INVALID,
        "legal order {order_id!r}: selector #{position} ({selector_type}) is not valid",
    ),
    _check(
        "ORDER_SCOPE_SELECTOR",
        _DENIED,
        "legal order {order_id!r} does not cover {which}; ask the authority for an order that names it",
    ),
    _check(
        "ORDER_SCOPE_CATEGORY",
        _DENIED,
        "legal order {order_id!r} does not cover data category {which}; ask for an order that authorises it",
    ),
)

#: ``normalise(selector) -> canonical value``; raises for a value that is no selector.
Normaliser = Callable[[pb.Selector], str]


def exact(selector: pb.Selector) -> str:
    """The default normaliser: values compare as exact strings."""
    return selector.value


@dataclass(frozen=True, slots=True)
class VerifiedOrder:
    """A verified legal order, the authority that signed it, and the SHA-256 of its payload.

    The ``order`` message may be shared through the verifier's cache: do not modify it.
    """

    order: pb.LegalOrder
    authority: Authority
    digest: bytes

    @property
    def order_id(self) -> str:
        """The order's id."""
        return self.order.order_id


def sign_order(order: pb.LegalOrder, key: SigningKey) -> pb.Envelope:
    """Serialise ``order`` once and sign exactly those bytes with the authority's ``key``.

    The key's id must be the authority id the federation registers (and the order names).
    """
    return sign_envelope(PAYLOAD_ORDER, order.SerializeToString(), key)


def check_order_signature(envelope: pb.Envelope, federation: Federation) -> tuple[bytes, VerifyingKey]:
    """Step 1: a signature by a registered authority over the exact payload; returns (payload, signer)."""
    try:
        return verify_envelope(
            envelope, payload_type=PAYLOAD_ORDER, keys=federation.authority_keys(), what="legal order"
        )
    except EnvelopeError as exc:
        exc.violations = [refusals.violation("ORDER_SIGNATURE", detail=exc.message)]
        raise
    except InvalidArgument as exc:
        exc.violations = [refusals.violation("ORDER_ENVELOPE", detail=exc.message)]
        raise


def parse_order(payload: bytes) -> pb.LegalOrder:
    """Step 2: the signed bytes as a LegalOrder."""
    try:
        return pb.LegalOrder.FromString(payload)
    except DecodeError:
        raise refusals.refuse("ORDER_DECODE") from None


def check_order_authority(order: pb.LegalOrder, signer: VerifyingKey, federation: Federation) -> Authority:
    """Step 3: the order claims exactly the signing authority, its country and its kind."""
    authority = federation.authority(signer.key_id)
    if order.issuing_authority != authority.id:
        raise refusals.refuse(
            "ORDER_AUTHORITY", order_id=order.order_id, named=order.issuing_authority, signer=authority.id
        )
    if order.issuing_country != authority.country:
        raise refusals.refuse(
            "ORDER_COUNTRY",
            order_id=order.order_id,
            named=order.issuing_country,
            signer=authority.id,
            country=authority.country,
        )
    if order.authorisation_type != authority.kind:
        raise refusals.refuse(
            "ORDER_AUTHORISATION_TYPE",
            order_id=order.order_id,
            named=order.authorisation_type or "missing",
            signer=authority.id,
            kind=authority.kind,
        )
    return authority


def check_order_fields(order: pb.LegalOrder) -> None:
    """Step 4: the fields every order needs are present and coherent."""
    if not order.order_id:
        raise refusals.refuse("ORDER_ID_MISSING")
    if not order.selectors:
        raise refusals.refuse("ORDER_SELECTORS_MISSING", order_id=order.order_id)
    if not order.categories or pb.DATA_CATEGORY_UNSPECIFIED in order.categories:
        raise refusals.refuse("ORDER_CATEGORIES_MISSING", order_id=order.order_id)
    if not order.HasField("valid_from") or not order.HasField("valid_until"):
        raise refusals.refuse("ORDER_WINDOW_MISSING", order_id=order.order_id)
    if order.valid_until.ToDatetime() <= order.valid_from.ToDatetime():
        raise refusals.refuse("ORDER_WINDOW_INVERTED", order_id=order.order_id)


def check_order_window(order: pb.LegalOrder, *, now: datetime, skew: timedelta = timedelta(0)) -> None:
    """Step 6: ``now`` is inside the order's validity window (``skew`` tolerates clock drift)."""
    valid_from = order.valid_from.ToDatetime(tzinfo=UTC)
    valid_until = order.valid_until.ToDatetime(tzinfo=UTC)
    if now + skew < valid_from:
        raise refusals.refuse(
            "ORDER_NOT_YET_VALID", order_id=order.order_id, valid_from=valid_from.isoformat()
        )
    if now - skew > valid_until:
        raise refusals.refuse("ORDER_EXPIRED", order_id=order.order_id, valid_until=valid_until.isoformat())


def verify_order(
    envelope: pb.Envelope, federation: Federation, *, now: datetime, skew: timedelta = timedelta(0)
) -> VerifiedOrder:
    """Run steps 1–6 on a signed order (uncached; see :class:`OrderVerifier`)."""
    verified = _verify_static(envelope, federation)
    check_order_window(verified.order, now=now, skew=skew)
    return verified


def _verify_static(envelope: pb.Envelope, federation: Federation) -> VerifiedOrder:
    """Steps 1–5: what does not depend on the time."""
    payload, signer = check_order_signature(envelope, federation)
    order = parse_order(payload)
    authority = check_order_authority(order, signer, federation)
    check_order_fields(order)
    check_target(order, authority=authority.id)
    return VerifiedOrder(order, authority, hashlib.sha256(payload).digest())


def check_order_covers(
    order: pb.LegalOrder,
    selectors: Iterable[pb.Selector],
    categories: Iterable[int],
    *,
    normalise: Normaliser = exact,
) -> None:
    """Raise :class:`PermissionDenied` unless ``order`` covers every selector and category.

    Selectors compare by type and ``normalise``d value, so ``A@Example.org`` in a query matches
    ``a@example.org`` in the order when the normaliser lower-cases e-mail addresses. The error
    (``ORDER_SCOPE_SELECTOR``) names every uncovered selector by position and type, never by
    value; an uncovered category is ``ORDER_SCOPE_CATEGORY``.
    """
    covered: set[tuple[int, str]] = set()
    for i, s in enumerate(order.selectors):
        try:
            covered.add((s.type, normalise(s)))
        except ComityError:
            raise refusals.refuse(
                "ORDER_SELECTOR_INVALID",
                order_id=order.order_id,
                position=i,
                selector_type=_selector_type(s.type),
            ) from None
    uncovered = [
        f"selector #{i} ({_selector_type(s.type)})"
        for i, s in enumerate(selectors)
        if (s.type, normalise(s)) not in covered
    ]
    if uncovered:
        raise refusals.refuse("ORDER_SCOPE_SELECTOR", order_id=order.order_id, which=", ".join(uncovered))
    allowed = set(order.categories)
    missing = [_category(c) for c in categories if c not in allowed]
    if missing:
        raise refusals.refuse("ORDER_SCOPE_CATEGORY", order_id=order.order_id, which=", ".join(missing))


def _selector_type(value: int) -> str:
    try:
        return pb.SelectorType.Name(value)
    except ValueError:
        return f"type {value}"


def _category(value: int) -> str:
    try:
        return pb.DataCategory.Name(value)
    except ValueError:
        return f"category {value}"


class OrderVerifier:
    """:func:`verify_order` with a bounded cache of verified orders, keyed by envelope digest.

    The digest covers the payload type, the payload and every signature, so a cached result is
    only ever returned for the very envelope that was verified. The validity window is checked
    on every call, since it depends on the time.
    """

    def __init__(
        self, federation: Federation, *, skew: timedelta = timedelta(0), cache_size: int = 4096
    ) -> None:
        self._federation = federation
        self._skew = skew
        self._cache: OrderedDict[bytes, VerifiedOrder] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def verify(self, envelope: pb.Envelope, *, now: datetime) -> VerifiedOrder:
        """Verify ``envelope`` at ``now``; raises like :func:`verify_order`."""
        key = envelope_digest(envelope)
        with self._lock:
            verified = self._cache.get(key)
            if verified is not None:
                self._cache.move_to_end(key)
        if verified is None:
            verified = _verify_static(envelope, self._federation)
            with self._lock:
                self._cache[key] = verified
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        check_order_window(verified.order, now=now, skew=self._skew)
        return verified


def envelope_digest(envelope: pb.Envelope) -> bytes:
    """SHA-256 over an envelope's PAE and its signatures, each length-prefixed (a cache key)."""
    h = hashlib.sha256(pae(envelope.payload_type, envelope.payload))
    for s in envelope.signatures:
        for part in (s.keyid.encode(), s.sig):
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)
    return h.digest()
