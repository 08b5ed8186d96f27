"""From verified facts to the Cedar request: a pure function, no I/O.

The rules never see a selector value or the justification text: the context carries
only what the rules decide on (selector types and counts, word counts, flags), so an
evaluation error or an audit entry cannot leak them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from comity.policy._toml import parse_table
from comity.policy.catalogue import OffenceCatalogue
from comity.policy.facts import QueryFacts

__all__ = ["CEDAR_NAMESPACE", "JustificationStandard", "build_request", "pattern_selector"]

CEDAR_NAMESPACE = "Comity"

# Characters that make a selector a pattern, a range or a list rather than one exact
# identifier. No normalised e-mail, phone, account, device or serial number needs them.
_PATTERN_CHARS = frozenset("*%?[]{}|^$\\,;\n\t")
_WORD = re.compile(r"[^\W\d_]{2,}|\d{2,}")
_NON_WORD = re.compile(r"[\W_]+")


def pattern_selector(selector_type: str, value: str) -> bool:
    """Whether ``value`` is not one exact identifier (empty, wildcard, range or list).

    A ``..`` anywhere is a range; for IP addresses a ``/`` is a CIDR block.
    """
    if not value.strip() or any(c in _PATTERN_CHARS for c in value) or ".." in value:
        return True
    return selector_type == "IP_ADDRESS" and "/" in value


@dataclass(frozen=True, slots=True)
class JustificationStandard:
    """What makes a justification boilerplate (from the bundle's ``justification.toml``).

    Thresholds (how many distinct words) live in the JUSTIFICATION rule itself; this
    only lists text that never counts as articulable facts.
    """

    boilerplate: frozenset[str]
    """Whole texts that are boilerplate, compared after normalisation (lower case, words only)."""
    placeholders: tuple[str, ...]
    """Fragments that mark an unfinished text anywhere in it (``"lorem ipsum"``, ``"tbd"``)."""

    @classmethod
    def parse(cls, text: str, *, source: str) -> JustificationStandard:
        """Read ``justification.toml``.

        Raises:
            BundleError: naming a missing or mistyped field.
        """
        table = parse_table(text, source=source)
        std = cls(
            boilerplate=frozenset(_normalise(p) for p in table.texts("boilerplate")),
            placeholders=tuple(_normalise(p) for p in table.texts("placeholders")),
        )
        table.done()
        return std

    def is_boilerplate(self, facts: str, link: str) -> bool:
        """Whether either text is a known boilerplate, holds a placeholder, or both say the same."""
        nf, nl = _normalise(facts), _normalise(link)
        if nf in self.boilerplate or nl in self.boilerplate:
            return True
        if any(f" {p} " in f" {text} " for p in self.placeholders for text in (nf, nl)):
            return True
        return bool(nf) and nf == nl


def _normalise(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


def distinct_words(text: str) -> int:
    """Distinct words of two or more letters (or numbers of two or more digits)."""
    return len({w.lower() for w in _WORD.findall(text)})


def build_request(
    facts: QueryFacts, catalogue: OffenceCatalogue, justification: JustificationStandard
) -> dict[str, Any]:
    """The Cedar request (principal, action, resource, context) for ``facts``.

    The caller must have run ``facts.check()``. Principal is the requesting agency,
    resource the responding country, action the query kind.
    """
    offence = catalogue.lookup(facts.order_issuing_country, facts.order_offence_code)
    context: dict[str, Any] = {
        "requesting_country": facts.requesting_country,
        "responding_country": facts.responding_country,
        "has_investigator": bool(facts.investigator),
        "selectors": {
            "count": facts.selector_count,
            "types": sorted({t for t, _ in facts.selectors}),
            "pattern_count": sum(pattern_selector(t, v) for t, v in facts.selectors),
        },
        "categories": sorted(set(facts.categories)),
        "time_range_days": facts.time_range_days,
        "max_records": facts.max_records,
        "has_hit_reference": facts.has_hit_reference,
        "has_case_reference": bool(facts.case_reference.strip()),
        "justification": {
            "facts_words": distinct_words(facts.justification_facts),
            "link_words": distinct_words(facts.justification_link),
            "boilerplate": justification.is_boilerplate(facts.justification_facts, facts.justification_link),
        },
        "order": {
            "present": bool(facts.order_id),
            "issuing_country": facts.order_issuing_country,
            "authorisation_type": facts.order_authorisation_type,
            "emergency": facts.order_emergency,
            "valid_from": int(facts.order_valid_from.timestamp()),
            "valid_until": int(facts.order_valid_until.timestamp()),
            "covers_selectors": facts.order_covers_selectors,
            "covers_categories": facts.order_covers_categories,
        },
        "offence": {
            "known": offence is not None,
            "max_penalty_years": offence.max_penalty_years if offence else 0,
            "category": offence.category if offence else "",
            "speech_related": offence.speech_related if offence else False,
        },
        "attestation": {
            "nationality": facts.target_nationality,
            "residence": facts.target_residence,
            "location": facts.target_location,
            "not_for_third_government": facts.not_for_third_government,
        },
        "quota": {
            "investigator_today": facts.investigator_queries_today,
            "agency_today": facts.agency_queries_today,
        },
        "emergency": {
            "overdue_orders": facts.emergency_overdue_orders,
            "order_rejected": facts.emergency_order_rejected,
        },
        "now": int(facts.now.timestamp()),
    }
    if facts.subject is not None:
        context["subject"] = facts.subject.context()
    return {
        "principal": {"type": f"{CEDAR_NAMESPACE}::Agency", "id": facts.requesting_agency},
        "action": {"type": f"{CEDAR_NAMESPACE}::Action", "id": facts.kind},
        "resource": {"type": f"{CEDAR_NAMESPACE}::Country", "id": facts.responding_country},
        "context": context,
    }
