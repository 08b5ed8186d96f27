"""The private hit check's protocol rules, shared by the SDK, the gateway and the nodes.

A ``PRIVATE_HIT_CHECK`` query carries no selector and no legal order: each selector travels as a
salted commitment (:func:`comity.core.private_filter.commitment`) next to its RFC 9497 blinded
element, and the order as its id and digest. The investigator signs that. The gateway alone
receives the openings (selector, salt, blind) and the order; :func:`open_query` checks that they
open what was signed and that every blinded element is the opened selector blinded with the
given blind, and returns the query as the gateway's other checks see it. The gateway then signs
the blinded elements it checked into its decision (:func:`check_vouched` at the node).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import grpc

from comity.core import refusals, voprf
from comity.core.dsse import payload_digest
from comity.core.private_filter import commitment, selector_input
from comity.v1 import comity_pb2 as pb

__all__ = [
    "MAX_PRIVATE_SELECTORS",
    "check_private_shape",
    "check_vouched",
    "evaluation_digest",
    "open_query",
]

#: At most this many selectors in one private check (the gateway's selector limit applies too).
MAX_PRIVATE_SELECTORS = 16

_TWO_STEP = "Prüm Decision 2008/615 (hit / no hit first, records in a second step)"
_AUTH = "18 U.S.C. §2523(b)(4)(D)(v) (an order covering every selector)"
refusals.register(
    refusals.Check(
        "PRIVATE_SHAPE",
        "TWO_STEP",
        grpc.StatusCode.INVALID_ARGUMENT,
        "a private hit check names its selectors only as commitments with blinded elements and its "
        "order only by reference: {detail}",
        _TWO_STEP,
    ),
    refusals.Check(
        "PRIVATE_OPENING",
        "INDEPENDENT_AUTHORISATION",
        grpc.StatusCode.INVALID_ARGUMENT,
        "the openings do not open the signed query: {detail}; send the selector, salt and blind "
        "each commitment was made from, in the query's order",
        _AUTH,
    ),
    refusals.Check(
        "PRIVATE_BLINDING",
        "INDEPENDENT_AUTHORISATION",
        grpc.StatusCode.PERMISSION_DENIED,
        "blinded element {position} is not selector {position} blinded with the given blind; blind "
        "exactly the selector the order covers",
        _AUTH,
    ),
    refusals.Check(
        "PRIVATE_ORDER_REFERENCE",
        "INDEPENDENT_AUTHORISATION",
        grpc.StatusCode.INVALID_ARGUMENT,
        "the legal order sent with the openings is not the one the query names: {detail}",
        _AUTH,
    ),
    refusals.Check(
        "PRIVATE_FILTER_EXPIRED",
        "TWO_STEP",
        grpc.StatusCode.FAILED_PRECONDITION,
        "the node's filters of epoch {epoch} expired at {expires}; fetch the node's current filters",
        _TWO_STEP,
    ),
    refusals.Check(
        "PRIVATE_FILTER_INVALID",
        "AUDIT_FIELDS",
        grpc.StatusCode.UNAUTHENTICATED,
        "the node's private filters cannot be trusted: {detail}",
        "Prüm Decision 2008/615 art. 30 (the holding body)",
    ),
    refusals.Check(
        "PRIVATE_NOT_VOUCHED",
        "INDEPENDENT_AUTHORISATION",
        grpc.StatusCode.UNAUTHENTICATED,
        "the gateway's decision does not vouch for this query's blinded elements, order and order facts",
        _AUTH,
    ),
)


def check_private_shape(query: pb.Query) -> None:
    """A private check carries no selector, no order, its order reference and 1–16 valid elements."""

    def bad(detail: str) -> None:
        raise refusals.refuse("PRIVATE_SHAPE", detail=detail)

    if (
        query.selectors
        or query.HasField("legal_order")
        or query.hit_reference
        or query.HasField("private_precedent")
    ):
        bad("selectors, legal_order, hit_reference and private_precedent must be empty")
    if not query.order_reference.order_id or len(query.order_reference.order_digest) != 32:
        bad("order_reference needs the order's id and the SHA-256 of its signed payload")
    if not 1 <= len(query.private_selectors) <= MAX_PRIVATE_SELECTORS:
        bad(f"give 1 to {MAX_PRIVATE_SELECTORS} private selectors")
    for i, s in enumerate(query.private_selectors):
        if len(s.commitment) != 32:
            bad(f"commitment {i} must be 32 bytes")
        try:
            voprf.check_element(s.blinded_element, what=f"blinded element {i}")
        except voprf.InvalidInput as exc:
            bad(str(exc))


def open_query(
    query: pb.Query, openings: pb.PrivateOpenings, *, normalise: Callable[[pb.Selector], str]
) -> pb.Query:
    """The private query as the gateway checks it: its selectors and order opened.

    ``normalise`` gives a selector's canonical value (raising :class:`InvalidSelector`). Checks,
    in order: one opening per private selector, of the same type; each commitment opens to the
    normalised selector with its salt; each blinded element is that selector's VOPRF input blinded
    with the opening's blind; the order sent is the one referenced (id and payload digest).
    """
    check_private_shape(query)
    if len(openings.openings) != len(query.private_selectors):
        raise refusals.refuse(
            "PRIVATE_OPENING",
            detail=f"{len(openings.openings)} openings for {len(query.private_selectors)} selectors",
        )
    selectors: list[pb.Selector] = []
    for i, (signed, opening) in enumerate(zip(query.private_selectors, openings.openings, strict=True)):
        if opening.selector.type != signed.type or len(opening.salt) != 32:
            raise refusals.refuse("PRIVATE_OPENING", detail=f"opening {i} has another type or no salt")
        value = normalise(opening.selector)
        name = pb.SelectorType.Name(signed.type)
        if not hmac.compare_digest(commitment(opening.salt, name, value), signed.commitment):
            raise refusals.refuse("PRIVATE_OPENING", detail=f"opening {i} does not open commitment {i}")
        try:
            expected = voprf.blind_with(selector_input(name, value), opening.blind)
        except voprf.InvalidInput:
            raise refusals.refuse("PRIVATE_BLINDING", position=i) from None
        if not hmac.compare_digest(expected, signed.blinded_element):
            raise refusals.refuse("PRIVATE_BLINDING", position=i)
        selectors.append(pb.Selector(type=signed.type, value=opening.selector.value))
    if not openings.HasField("legal_order"):
        raise refusals.refuse("PRIVATE_ORDER_REFERENCE", detail="no legal order was sent")
    if not hmac.compare_digest(payload_digest(openings.legal_order), query.order_reference.order_digest):
        raise refusals.refuse("PRIVATE_ORDER_REFERENCE", detail="its digest differs")
    opened = pb.Query()
    opened.CopyFrom(query)
    opened.selectors.extend(selectors)
    opened.legal_order.CopyFrom(openings.legal_order)
    return opened


def check_vouched(decision: pb.GatewayDecision, query: pb.Query) -> None:
    """At the node: the gateway's signed decision names this order, exactly these elements, and
    the order's facts (without selectors) for the node's inbound policy."""
    elements = [s.blinded_element for s in query.private_selectors]
    order = query.order_reference.order_id
    if (
        list(decision.checked_blinded_elements) != elements
        or decision.order_id != order
        or decision.order_facts.order_id != order
        or decision.order_facts.selectors
    ):
        raise refusals.refuse("PRIVATE_NOT_VOUCHED")


def evaluation_digest(evaluation: pb.PrivateEvaluation) -> bytes:
    """SHA-256 over the epoch, the evaluated elements and the proof (what the node's statement signs)."""
    h = hashlib.sha256(b"comity/private-evaluation/v1\x00" + evaluation.epoch.to_bytes(8, "big"))
    for element in evaluation.evaluated_elements:
        h.update(element)
    h.update(evaluation.proof)
    return h.digest()
