"""The offence catalogue: each party's offences with their maximum penalty.

SERIOUS_CRIME is decided on the maximum penalty the *issuing* country's law sets for the
offence named in the legal order, so the catalogue is keyed by (country, code).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from comity.policy._toml import parse_table

__all__ = ["LIFE_IMPRISONMENT_YEARS", "Offence", "OffenceCatalogue"]

# "life" in the catalogue: longer than any fixed term, and a whole number Cedar can compare.
LIFE_IMPRISONMENT_YEARS = 99


@dataclass(frozen=True, slots=True)
class Offence:
    """One offence of one party's law."""

    country: str
    """Country whose law defines the offence (ISO 3166-1 alpha-2)."""
    code: str
    """Stable code as legal orders cite it, e.g. ``"18 USC 1030(a)(7)"`` or ``"CC 346"``."""
    description: str
    """What the offence is, in a few words."""
    max_penalty_years: int
    """Maximum term of imprisonment in whole years (``LIFE_IMPRISONMENT_YEARS`` for life)."""
    category: str
    """Offence class for transparency reports, e.g. ``"CYBER"``, ``"TERRORISM"``."""
    speech_related: bool = False
    """The offence criminalises speech; the agreement sends such requests to legal review."""


class OffenceCatalogue:
    """The offences of a bundle, looked up by (country, code)."""

    def __init__(self, offences: list[Offence]) -> None:
        self._by_key = {(o.country, o.code): o for o in offences}

    def lookup(self, country: str, code: str) -> Offence | None:
        """The offence ``code`` of ``country``'s law, or None when the catalogue lacks it."""
        return self._by_key.get((country, code))

    def __iter__(self) -> Iterator[Offence]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    @classmethod
    def parse(cls, text: str, *, source: str) -> OffenceCatalogue:
        """Read ``offences.toml``: one ``[[offence]]`` table per offence.

        Raises:
            BundleError: naming a missing or mistyped field, or a duplicate (country, code).
        """
        table = parse_table(text, source=source)
        offences: list[Offence] = []
        seen: set[tuple[str, str]] = set()
        for t in table.tables("offence"):
            if t.data.get("max_penalty_years") == "life":
                t.text("max_penalty_years")
                years = LIFE_IMPRISONMENT_YEARS
            else:
                years = t.integer("max_penalty_years")
            o = Offence(
                country=t.text("country"),
                code=t.text("code"),
                description=t.text("description"),
                max_penalty_years=years,
                category=t.text("category"),
                speech_related=t.flag("speech_related", False),
            )
            t.done()
            if (o.country, o.code) in seen:
                raise t.error("code", f"duplicate offence {o.country} {o.code}")
            seen.add((o.country, o.code))
            offences.append(o)
        table.done()
        return cls(offences)
