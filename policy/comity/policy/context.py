"""From verified facts to the Cedar request: a pure function, no I/O.

The rules never see a selector value or the justification text: the context carries
only what the rules decide on (selector types and counts, word counts, flags), so an
evaluation error or an audit entry cannot leak them.
"""

from __future__ import annotations

from typing import Any

from comity.policy.catalogue import OffenceCatalogue
from comity.policy.facts import QueryFacts
from comity.policy.justification import JustificationStandard, distinct_words

__all__ = ["CEDAR_NAMESPACE", "JustificationStandard", "build_request", "pattern_selector"]

CEDAR_NAMESPACE = "Comity"

# Characters that make a selector a pattern, a range or a list rather than one exact
# identifier. No normalised e-mail, phone, account, device or serial number needs them.
_PATTERN_CHARS = frozenset("*%?[]{}|^$\\,;\n\t")


def pattern_selector(selector_type: str, value: str) -> bool:
    """Whether ``value`` is not one exact identifier (empty, wildcard, range or list).

    A ``..`` anywhere is a range; for IP addresses a ``/`` is a CIDR block.
    """
    if not value.strip() or any(c in _PATTERN_CHARS for c in value) or ".." in value:
        return True
    return selector_type == "IP_ADDRESS" and "/" in value


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
        "justification": _justification(facts, justification),
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
            "nationalities": sorted(facts.target_nationalities),
            "residences": sorted(facts.target_residences),
            "locations": sorted(facts.target_locations),
            "kind": facts.target_kind,
            "incorporated_in": sorted(facts.target_incorporated_in),
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


def _justification(facts: QueryFacts, standard: JustificationStandard) -> dict[str, Any]:
    record: dict[str, Any] = {
        "facts_words": distinct_words(facts.justification_facts),
        "link_words": distinct_words(facts.justification_link),
        "boilerplate": standard.is_boilerplate(
            facts.justification_facts, facts.justification_link, case_reference=facts.case_reference
        ),
    }
    if facts.justification_reused is not None:
        # Only where it is known (the gateway): a schema that needs it refuses a request without it.
        record["reused"] = facts.justification_reused
    return record
