"""The emergency track as the log tells it: each emergency order's first use, deadline and review.

Folded from ``emergency`` and ``validated`` events, in log order. The gateway keeps one
:class:`EmergencyRecord` in memory for its policy; legal officers build one from a copy of
the log to see which emergency orders were confirmed, rejected, validated late or are overdue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from comity.audit.events import EmergencyEvent, Event, ValidatedEvent

__all__ = ["EmergencyRecord", "EmergencyUse", "ReviewStatus"]

ReviewStatus = Literal["pending", "confirmed", "rejected"]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class EmergencyUse:
    """One emergency order's record: first use, deadline, and the review's outcome."""

    order_id: str
    order_digest: bytes
    agency: str
    issuing_country: str
    authority: str
    first_used: datetime
    validate_by: datetime
    status: ReviewStatus = "pending"
    late: bool = False
    reviewed_by: str = ""

    def overdue(self, now: datetime) -> bool:
        """Past the deadline with no review."""
        return self.status == "pending" and now > self.validate_by

    def describe(self, now: datetime) -> str:
        """``confirmed``, ``rejected`` (each possibly ``late``), ``pending`` or ``OVERDUE``."""
        if self.status == "pending":
            return "OVERDUE" if self.overdue(now) else "pending"
        return f"{self.status} (late)" if self.late else self.status


class EmergencyRecord:
    """Emergency orders by the SHA-256 of their signed payload."""

    def __init__(self) -> None:
        self._uses: dict[bytes, EmergencyUse] = {}

    def __iter__(self) -> Iterator[EmergencyUse]:
        return iter(sorted(self._uses.values(), key=lambda u: u.first_used))

    def __len__(self) -> int:
        return len(self._uses)

    def get(self, order_digest: bytes) -> EmergencyUse | None:
        """The record of one emergency order, if it was used."""
        return self._uses.get(order_digest)

    def add(self, use: EmergencyUse) -> None:
        """Record a first use (the caller logs it)."""
        self._uses[use.order_digest] = use

    def remove(self, order_digest: bytes) -> None:
        """Forget a first use whose log entry could not be written."""
        self._uses.pop(order_digest, None)

    def overdue(self, agency: str, now: datetime) -> int:
        """How many of ``agency``'s emergency orders are past the deadline with no review."""
        return sum(1 for u in self._uses.values() if u.agency == agency and u.overdue(now))

    def apply(self, event: Event) -> None:
        """Fold one log event in; events of other kinds are ignored."""
        if isinstance(event, EmergencyEvent):
            digest = bytes.fromhex(event.order_digest)
            self._uses.setdefault(
                digest,
                EmergencyUse(
                    order_id=event.order_id,
                    order_digest=digest,
                    agency=event.agency,
                    issuing_country=event.issuing_country,
                    authority=event.authority,
                    first_used=_time(event.at),
                    validate_by=_time(event.validate_by),
                ),
            )
        elif isinstance(event, ValidatedEvent):
            use = self._uses.get(bytes.fromhex(event.order_digest))
            if use is not None and use.status == "pending":
                use.status = "confirmed" if event.confirmed else "rejected"
                use.late, use.reviewed_by = event.late, event.authority
