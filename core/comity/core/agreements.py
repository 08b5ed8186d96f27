"""Agreements between member countries, and which one decides a query.

An agreement binds two or more member countries for a period and names the policy bundles that
decide queries under it: the gateway's bundle (``bundle_digest``) and each responding country's
inbound bundle (``inbound``). Agreements covering a common pair of countries never overlap in
time (the federation loader refuses it), so at most one agreement decides a query from one
country to another at a given instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Agreement", "agreement_for", "overlapping"]


@dataclass(frozen=True, slots=True)
class Agreement:
    """An agreement: its parties (country codes), its bundles by digest, and its period.

    The period is ``[effective_from, effective_until)``; ``effective_until`` None: open-ended.
    ``inbound`` maps each party to its inbound bundle's digest.
    """

    id: str
    parties: tuple[str, ...]
    bundle_digest: str
    effective_from: datetime
    effective_until: datetime | None = None
    inbound: Mapping[str, str] | None = None

    def in_force(self, at: datetime) -> bool:
        """Whether ``at`` (timezone-aware) falls within the agreement's period."""
        if at.utcoffset() is None:
            raise ValueError("an agreement is asked about a date-time without an offset")
        return self.effective_from <= at and (self.effective_until is None or at < self.effective_until)

    def binds(self, requesting: str, responding: str) -> bool:
        """Whether both countries are parties (and are two countries)."""
        return requesting != responding and requesting in self.parties and responding in self.parties

    def inbound_digest(self, responding: str) -> str | None:
        """The responding country's inbound bundle digest, if the agreement names one."""
        return (self.inbound or {}).get(responding)


def agreement_for(
    agreements: Iterable[Agreement], requesting: str, responding: str, at: datetime
) -> Agreement | None:
    """The agreement in force at ``at`` whose parties include both countries; None when there is none.

    A country querying itself is under no agreement (None).
    """
    for agreement in agreements:
        if agreement.binds(requesting, responding) and agreement.in_force(at):
            return agreement
    return None


def overlapping(a: Agreement, b: Agreement) -> tuple[str, str] | None:
    """A pair of countries both agreements bind while their periods overlap, or None."""
    common = sorted(set(a.parties) & set(b.parties))
    if len(common) < 2:
        return None
    a_before_b = a.effective_until is not None and a.effective_until <= b.effective_from
    b_before_a = b.effective_until is not None and b.effective_until <= a.effective_from
    return None if a_before_b or b_before_a else (common[0], common[1])
