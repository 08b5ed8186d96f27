"""Transparency reports: aggregate counts from the log, for the agreement's periodic review.

Counts only — per requesting agency, responding node, data category, offence class and
outcome, per agreement and pair of countries, and the number of records disclosed — never an
identifier of a person or a query.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from comity.audit.events import (
    DecisionEvent,
    DisclosedEvent,
    EmergencyEvent,
    Event,
    FailedEvent,
    RefusedEvent,
    ValidatedEvent,
)

__all__ = ["TransparencyReport", "build_report"]


@dataclass
class TransparencyReport:
    """Aggregate counts over a period."""

    since: datetime | None
    until: datetime | None
    decisions: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    """(requesting agency, responding node, offence class, ALLOW/DENY) → queries."""
    agreements: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    """(agreement, requesting country, responding country, ALLOW/DENY) → queries; the agreement is
    "" for decisions made under a federation file without agreements."""
    no_agreement: Counter[str] = field(default_factory=Counter)
    """requesting agency → queries refused because no agreement covered their pair of countries."""
    categories: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(data category, ALLOW/DENY) → queries asking for it."""
    refusals_by_rule: Counter[str] = field(default_factory=Counter)
    """agreement rule → denied decisions it refused (a decision refused by two rules counts for both)."""
    refused_before_policy: Counter[str] = field(default_factory=Counter)
    """requesting agency → queries refused before a policy decision (signature, order, replay)."""
    disclosures: Counter[str] = field(default_factory=Counter)
    """responding node → answers given."""
    records_disclosed: Counter[str] = field(default_factory=Counter)
    """responding node → records released."""
    failures: Counter[str] = field(default_factory=Counter)
    """responding node → allowed queries that could not be completed."""
    emergencies: Counter[str] = field(default_factory=Counter)
    """requesting agency → emergency orders used for the first time."""
    emergency_reviews: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(requesting agency, confirmed / rejected, each possibly "late") → reviews of emergency orders."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "decisions": [
                {"agency": a, "node": n, "offence_class": o, "decision": d, "queries": c}
                for (a, n, o, d), c in sorted(self.decisions.items())
            ],
            "agreements": [
                {"agreement": a, "requesting": r, "responding": s, "decision": d, "queries": c}
                for (a, r, s, d), c in sorted(self.agreements.items())
            ],
            "no_agreement": dict(sorted(self.no_agreement.items())),
            "categories": [
                {"category": cat, "decision": d, "queries": c}
                for (cat, d), c in sorted(self.categories.items())
            ],
            "refusals_by_rule": dict(sorted(self.refusals_by_rule.items())),
            "refused_before_policy": dict(sorted(self.refused_before_policy.items())),
            "disclosures": dict(sorted(self.disclosures.items())),
            "records_disclosed": dict(sorted(self.records_disclosed.items())),
            "failures": dict(sorted(self.failures.items())),
            "emergencies": dict(sorted(self.emergencies.items())),
            "emergency_reviews": [
                {"agency": a, "outcome": o, "orders": c}
                for (a, o), c in sorted(self.emergency_reviews.items())
            ],
        }

    def to_csv(self) -> str:
        """Every count as one CSV row: ``table,key,...,count`` with the key columns of its table."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ["table", "agency", "node", "offence_class", "category", "rule", "outcome", "count",
             "agreement", "requesting", "responding"]
        )  # fmt: skip
        for (agency, node, offence, decision), n in sorted(self.decisions.items()):
            writer.writerow(["decisions", agency, node, offence, "", "", decision, n])
        for (agreement, requesting, responding, decision), n in sorted(self.agreements.items()):
            writer.writerow(
                ["agreements", "", "", "", "", "", decision, n, agreement, requesting, responding]
            )
        for agency, n in sorted(self.no_agreement.items()):
            writer.writerow(["no_agreement", agency, "", "", "", "NO_AGREEMENT", "REFUSED", n])
        for (category, decision), n in sorted(self.categories.items()):
            writer.writerow(["categories", "", "", "", category, "", decision, n])
        for rule, n in sorted(self.refusals_by_rule.items()):
            writer.writerow(["refusals_by_rule", "", "", "", "", rule, "DENY", n])
        for agency, n in sorted(self.refused_before_policy.items()):
            writer.writerow(["refused_before_policy", agency, "", "", "", "", "REFUSED", n])
        for node, n in sorted(self.disclosures.items()):
            writer.writerow(["disclosures", "", node, "", "", "", "answers", n])
            writer.writerow(["disclosures", "", node, "", "", "", "records", self.records_disclosed[node]])
        for node, n in sorted(self.failures.items()):
            writer.writerow(["failures", "", node, "", "", "", "FAILED", n])
        for agency, n in sorted(self.emergencies.items()):
            writer.writerow(["emergencies", agency, "", "", "", "", "first_use", n])
        for (agency, outcome), n in sorted(self.emergency_reviews.items()):
            writer.writerow(["emergency_reviews", agency, "", "", "", "", outcome, n])
        return out.getvalue()


def _at(event: Event) -> datetime:
    return datetime.fromisoformat(event.at.replace("Z", "+00:00"))


def build_report(
    events: Iterable[Event],
    *,
    offence_class: Callable[[str], str],
    since: datetime | None = None,
    until: datetime | None = None,
) -> TransparencyReport:
    """Count ``events`` in [since, until); ``offence_class`` maps an offence code to its class."""
    report = TransparencyReport(since, until)
    for event in events:
        when = _at(event)
        if (since is not None and when < since) or (until is not None and when >= until):
            continue
        if isinstance(event, DecisionEvent):
            report.decisions[
                (event.agency, event.target_node, offence_class(event.offence_code), event.decision)
            ] += 1
            pair = (
                str(event.facts.get("requesting_country", "")),
                str(event.facts.get("responding_country", "")),
            )
            report.agreements[(event.agreement, *pair, event.decision)] += 1
            for category in event.categories:
                report.categories[(category, event.decision)] += 1
            if event.decision == "DENY":
                for rule in event.rule_codes:
                    report.refusals_by_rule[rule] += 1
        elif isinstance(event, RefusedEvent):
            report.refused_before_policy[event.agency] += 1
            if any(check == "NO_AGREEMENT" for check, _ in event.checks):
                report.no_agreement[event.agency] += 1
        elif isinstance(event, DisclosedEvent):
            report.disclosures[event.node] += 1
            report.records_disclosed[event.node] += event.record_count
        elif isinstance(event, FailedEvent):
            report.failures[event.node] += 1
        elif isinstance(event, EmergencyEvent):
            report.emergencies[event.agency] += 1
        elif isinstance(event, ValidatedEvent):
            outcome = ("confirmed" if event.confirmed else "rejected") + (" late" if event.late else "")
            report.emergency_reviews[(event.agency, outcome)] += 1
    return report
