"""The private hit check's protocol rules without servers: shape, openings, binding, vouching."""

from __future__ import annotations

import secrets

import pytest

from comity.core import errors, voprf
from comity.core.dsse import payload_digest
from comity.core.private_check import check_private_shape, check_vouched, open_query
from comity.core.private_filter import commitment, selector_input
from comity.v1 import comity_pb2 as pb

_ORDER = pb.Envelope(payload_type="application/vnd.comity.legal-order+protobuf", payload=b"order bytes")


def _private(values: list[str]) -> tuple[pb.Query, pb.PrivateOpenings]:
    query = pb.Query(query_id="q1", kind=pb.PRIVATE_HIT_CHECK)
    query.order_reference.order_id = "ORDER-1"
    query.order_reference.order_digest = payload_digest(_ORDER)
    openings = pb.PrivateOpenings(legal_order=_ORDER)
    for value in values:
        salt = secrets.token_bytes(32)
        blind, element = voprf.blind(selector_input("EMAIL", value))
        query.private_selectors.add(
            type=pb.EMAIL, commitment=commitment(salt, "EMAIL", value), blinded_element=element
        )
        openings.openings.add(selector=pb.Selector(type=pb.EMAIL, value=value), salt=salt, blind=blind)
    return query, openings


def _lower(selector: pb.Selector) -> str:
    return selector.value.lower()


def _checks(err: errors.ComityError) -> set[str]:
    return {v.check for v in err.violations}


def test_openings_give_the_query_the_gateway_checks() -> None:
    query, openings = _private(["a@example.org", "b@example.org"])
    opened = open_query(query, openings, normalise=_lower)
    assert [s.value for s in opened.selectors] == ["a@example.org", "b@example.org"]
    assert opened.legal_order == _ORDER
    assert not query.selectors  # the signed query is left as it was


def test_blinded_element_of_another_selector_is_refused() -> None:
    query, openings = _private(["a@example.org"])
    other, _ = _private(["b@example.org"])
    query.private_selectors[0].blinded_element = other.private_selectors[0].blinded_element
    with pytest.raises(errors.PermissionDenied) as caught:
        open_query(query, openings, normalise=_lower)
    assert _checks(caught.value) == {"PRIVATE_BLINDING"}


def test_another_blind_is_refused() -> None:
    query, openings = _private(["a@example.org"])
    openings.openings[0].blind = voprf.blind(b"x")[0]
    with pytest.raises(errors.PermissionDenied):
        open_query(query, openings, normalise=_lower)


@pytest.mark.parametrize("change", ["salt", "value", "type", "count"])
def test_openings_that_do_not_open_the_commitments_are_refused(change: str) -> None:
    query, openings = _private(["a@example.org", "b@example.org"])
    o = openings.openings[0]
    if change == "salt":
        o.salt = bytes(32)
    elif change == "value":
        o.selector.value = "c@example.org"
    elif change == "type":
        o.selector.type = pb.USERNAME
    else:
        del openings.openings[1]
    with pytest.raises(errors.InvalidArgument) as caught:
        open_query(query, openings, normalise=_lower)
    assert _checks(caught.value) == {"PRIVATE_OPENING"}


def test_another_order_is_refused() -> None:
    query, openings = _private(["a@example.org"])
    openings.legal_order.payload = b"another order"
    with pytest.raises(errors.InvalidArgument) as caught:
        open_query(query, openings, normalise=_lower)
    assert _checks(caught.value) == {"PRIVATE_ORDER_REFERENCE"}


@pytest.mark.parametrize(
    "change", ["plain selector", "order", "no reference", "bad element", "none", "too many"]
)
def test_shape(change: str) -> None:
    query, _ = _private(["a@example.org"])
    if change == "plain selector":
        query.selectors.add(type=pb.EMAIL, value="a@example.org")
    elif change == "order":
        query.legal_order.CopyFrom(_ORDER)
    elif change == "no reference":
        query.ClearField("order_reference")
    elif change == "bad element":
        query.private_selectors[0].blinded_element = bytes(32)
    elif change == "none":
        del query.private_selectors[:]
    else:
        query, _ = _private([f"u{i}@example.org" for i in range(17)])
    with pytest.raises(errors.InvalidArgument) as caught:
        check_private_shape(query)
    assert _checks(caught.value) == {"PRIVATE_SHAPE"}


def test_the_node_needs_the_gateways_word_for_exactly_these_elements() -> None:
    query, _ = _private(["a@example.org", "b@example.org"])
    elements = [s.blinded_element for s in query.private_selectors]
    facts = pb.LegalOrder(order_id="ORDER-1", offence_code="18 USC 1030(a)(7)")
    check_vouched(
        pb.GatewayDecision(order_id="ORDER-1", checked_blinded_elements=elements, order_facts=facts), query
    )
    with_selectors = pb.LegalOrder(
        order_id="ORDER-1", selectors=[pb.Selector(type=pb.EMAIL, value="a@x.org")]
    )
    for decision in (
        pb.GatewayDecision(order_id="ORDER-1", checked_blinded_elements=elements[:1], order_facts=facts),
        pb.GatewayDecision(order_id="ORDER-1", checked_blinded_elements=elements[::-1], order_facts=facts),
        pb.GatewayDecision(order_id="ORDER-2", checked_blinded_elements=elements, order_facts=facts),
        # No order facts for the node's inbound policy, facts of another order, or the selectors.
        pb.GatewayDecision(order_id="ORDER-1", checked_blinded_elements=elements),
        pb.GatewayDecision(
            order_id="ORDER-1",
            checked_blinded_elements=elements,
            order_facts=pb.LegalOrder(order_id="ORDER-2"),
        ),
        pb.GatewayDecision(order_id="ORDER-1", checked_blinded_elements=elements, order_facts=with_selectors),
    ):
        with pytest.raises(errors.Unauthenticated) as caught:
            check_vouched(decision, query)
        assert _checks(caught.value) == {"PRIVATE_NOT_VOUCHED"}
