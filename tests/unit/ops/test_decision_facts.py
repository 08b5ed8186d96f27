"""Every policy fact is placed: logged in clear, or behind a commitment."""

from __future__ import annotations

import dataclasses

from comity.gateway.decision_facts import COMMITTED, NODE_ONLY

# The facts logged in clear. A new QueryFacts field must be added here or to COMMITTED (when it
# is personal data), deliberately.
CLEAR = {
    "requesting_country", "responding_country", "requesting_agency", "investigator", "kind",
    "categories", "time_range_days", "max_records", "has_hit_reference", "case_reference",
    "order_id", "order_offence_code", "order_issuing_country", "order_authorisation_type",
    "order_emergency", "order_valid_from", "order_valid_until", "order_covers_selectors",
    "order_covers_categories", "not_for_third_government", "investigator_queries_today",
    "agency_queries_today", "emergency_overdue_orders", "emergency_order_rejected", "now",
    "justification_reused", "private_precedent",
}  # fmt: skip


def test_every_fact_is_logged_in_clear_or_committed() -> None:
    from comity.policy.facts import QueryFacts

    names = {f.name for f in dataclasses.fields(QueryFacts)}
    assert names == CLEAR | COMMITTED | NODE_ONLY
    assert not CLEAR & COMMITTED
    assert not (CLEAR | COMMITTED) & NODE_ONLY
