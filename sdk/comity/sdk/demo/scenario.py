"""One query of the demo's story: who asks which node about whom, and what it shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from comity.nodes.schema import SelectorType
from comity.nodes.synthetic import Person
from comity.sdk.demo.setup import OrderSpec

__all__ = ["Scenario"]


@dataclass(frozen=True)
class Scenario:
    """One query of the demo, what it shows, and whether it should be allowed."""

    title: str
    agency: str
    node: str
    person: Person
    kind: str
    categories: tuple[str, ...]
    order: OrderSpec
    expect_allowed: bool
    explains: str
    facts: str = (
        "Ransomware deployed against a hospital network on 2026-10-02; the extortion demand named this "
        "account as the contact for payment instructions."
    )
    link: str = "The account sent the ransom note and received the decryption payment instructions."
    # The investigation the query serves: one case may need several orders, but a case's facts
    # are its own (the gateway refuses them under another case reference of the same agency).
    case_reference: str = "FBI-2026-CY-0417"
    # Selectors the query adds beyond those its order names (to show an unauthorised one).
    extra_selectors: tuple[SelectorType, ...] = ()
    # The synthetic records span 2025; a bounded range is part of a particular request.
    time_range: tuple[datetime, datetime] = (
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2025, 12, 31, tzinfo=UTC),
    )
