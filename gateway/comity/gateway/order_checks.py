"""The legal order's checks, each failure collected so that policy can still name every rule.

A query whose order is signed by a registered authority and decodes is well-formed enough for
policy to run, even if the order is out of date, claims another authority or does not cover
the query: the gateway then refuses with every failing check at once. An order whose
signature does not verify, or whose bytes are no LegalOrder, stops the query (the check's
error is raised).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from comity.core import refusals
from comity.core.errors import ComityError
from comity.core.federation import Federation
from comity.core.orders import (
    OrderVerifier,
    VerifiedOrder,
    check_order_authority,
    check_order_covers,
    check_order_fields,
    check_order_signature,
    check_order_window,
    parse_order,
)
from comity.core.target import check_target
from comity.v1 import comity_pb2 as pb

__all__ = ["OrderOutcome", "check_order"]


@dataclass
class OrderOutcome:
    """What the checks found: the order (None when the query carries none) and every failure."""

    order: VerifiedOrder | None
    failures: list[ComityError] = field(default_factory=list)
    covers_selectors: bool = False
    covers_categories: bool = False


def check_order(
    query: pb.Query,
    *,
    verifier: OrderVerifier,
    federation: Federation,
    selectors: Sequence[pb.Selector],
    normalise: Callable[[pb.Selector], str],
    now: datetime,
) -> OrderOutcome:
    """Run every order check on ``query``; raise only when the order is unsigned or undecodable.

    ``selectors`` are the query's selectors that are themselves valid (coverage of an invalid
    selector is not asked: its own check refuses it).
    """
    if not query.HasField("legal_order"):
        return OrderOutcome(None, [refusals.refuse("ORDER_MISSING")])
    envelope = query.legal_order
    failures: list[ComityError] = []
    try:
        verified = verifier.verify(envelope, now=now)
    except ComityError:
        # Re-run the steps one by one, so every failure is named (the refusal path only).
        payload, signer = check_order_signature(envelope, federation)
        order = parse_order(payload)
        authority = federation.authority(signer.key_id)
        for step in (
            lambda: check_order_authority(order, signer, federation),
            lambda: check_order_fields(order),
            lambda: check_order_window(order, now=now),
            lambda: check_target(order, authority=authority.id),
        ):
            try:
                step()
            except ComityError as err:
                failures.append(err)
        verified = VerifiedOrder(order, authority, hashlib.sha256(payload).digest())
    outcome = OrderOutcome(verified, failures)
    outcome.covers_selectors = _covered(outcome, lambda: check_order_covers(
        verified.order, selectors, [], normalise=normalise
    ))  # fmt: skip
    outcome.covers_categories = _covered(outcome, lambda: check_order_covers(
        verified.order, [], query.categories
    ))  # fmt: skip
    return outcome


def _covered(outcome: OrderOutcome, check: Callable[[], None]) -> bool:
    try:
        check()
    except ComityError as err:
        outcome.failures.append(err)
        return False
    return True
