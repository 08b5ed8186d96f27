"""What the responding node's own records say about the target: facts for node bundles only.

The requester attests who the target is; the node also knows. Before a node decides, it reads
the records that the query's selectors identify and states here every country those records
tie the subject to, and how many of its own-person outcomes the query's order has already
used. The gateway never has these facts, so the agreement's bundle has no ``subject`` in its
schema, and a node bundle that declares one refuses (fail closed) a decision without them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from comity.core.errors import InvalidArgument

__all__ = ["KnownSubject"]

_CODE = re.compile(r"[A-Z]{2}")
_SETS = ("nationalities", "residences", "countries")
_COUNTS = ("records", "order_outcomes")


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownSubject:
    """The target as the responding node's records show it (ISO 3166-1 alpha-2 codes)."""

    nationalities: tuple[str, ...]
    """Every nationality the subject's records state."""
    residences: tuple[str, ...]
    """Every country of residence the subject's records state."""
    countries: tuple[str, ...]
    """Every other country the records tie the subject to (incorporation, location)."""
    records: int
    """How many of the subject's records the node read."""
    order_outcomes: int
    """The order's outcomes under the node's own-person rule so far, not counting this query."""

    def check(self) -> None:
        """Raise InvalidArgument naming the first malformed fact."""
        for name in _SETS:
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(
                isinstance(c, str) and _CODE.fullmatch(c) for c in value
            ):
                raise InvalidArgument(f"fact subject.{name} must be a list of ISO 3166-1 alpha-2 codes")
        for name in _COUNTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(f"fact subject.{name} must be a non-negative integer")

    def context(self) -> dict[str, Any]:
        """The Cedar record ``context.subject``."""
        return {
            "nationalities": sorted(set(self.nationalities)),
            "residences": sorted(set(self.residences)),
            "countries": sorted(set(self.countries)),
            "records": self.records,
            "order_outcomes": self.order_outcomes,
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> KnownSubject:
        """From a table of facts (``tests.toml``); every field is required."""
        names = (*_SETS, *_COUNTS)
        unknown = sorted(set(data) - set(names))
        missing = [n for n in names if n not in data]
        if unknown or missing:
            raise InvalidArgument(f"fact subject: unknown {unknown}, missing {missing}")
        values: dict[str, Any] = {n: tuple(data[n]) if isinstance(data[n], list) else data[n] for n in names}
        subject = cls(**values)
        subject.check()
        return subject
