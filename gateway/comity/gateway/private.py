"""The gateway's part in a private hit check: open the query, check the binding, vouch for it.

The investigator's signed query names its selectors only as commitments with blinded elements
and its order by reference; the openings and the order come beside it, to the gateway alone.
:func:`open_private` checks them (:func:`comity.core.private_check.open_query`) and gives the
rest of the pipeline the opened query, so the order, coverage, policy, quota and logging steps
run as for any query (the log holds the selectors as salted commitments, as always). What is
forwarded to the node is the signed query as received, without the openings; the gateway's
signed decision lists the blinded elements it checked (:func:`vouched_elements`) and the order's
facts without its selectors (:func:`order_facts`), for the node's inbound policy.
"""

from __future__ import annotations

from comity.core import refusals
from comity.core.errors import ComityError
from comity.core.private_check import open_query
from comity.core.queries import VerifiedQuery
from comity.core.selectors import normalise
from comity.gateway.order_checks import OrderOutcome
from comity.v1 import comity_pb2 as pb

__all__ = ["check_order_reference", "open_private", "order_facts", "stale_filters", "vouched_elements"]


def open_private(query: VerifiedQuery, openings: pb.PrivateOpenings, *, region: str) -> VerifiedQuery:
    """``query`` with its selectors and order opened; digest and envelope stay the signed ones."""

    def canonical(selector: pb.Selector) -> str:
        return normalise(selector.type, selector.value, region=region)

    opened = open_query(query.query, openings, normalise=canonical)
    return VerifiedQuery(opened, query.digest, query.signer, query.envelope, query.issued_at)


def check_order_reference(query: VerifiedQuery, outcome: OrderOutcome) -> None:
    """The order that was verified is the one the signed query names by id."""
    if outcome.order is not None and outcome.order.order_id != query.query.order_reference.order_id:
        raise refusals.refuse("PRIVATE_ORDER_REFERENCE", detail="its order id differs")


def vouched_elements(query: pb.Query) -> list[bytes]:
    """The blinded elements the gateway checked (none for other kinds)."""
    if query.kind != pb.PRIVATE_HIT_CHECK:
        return []
    return [s.blinded_element for s in query.private_selectors]


def order_facts(query: pb.Query, order: pb.LegalOrder | None) -> pb.LegalOrder | None:
    """What the node's inbound policy needs of a private check's order: the verified order
    without its selectors (the node never receives the order itself); None for other kinds."""
    if query.kind != pb.PRIVATE_HIT_CHECK or order is None:
        return None
    facts = pb.LegalOrder()
    facts.CopyFrom(order)
    del facts.selectors[:]
    return facts


def stale_filters(err: ComityError) -> bool:
    """Whether a node's FAILED_PRECONDITION is its refusal of a stale filter epoch."""
    return any(v.check == "PRIVATE_FILTER_STALE" for v in err.violations)
