"""What each page shows, computed from the mirror: pure reads, no web framework here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from comity.audit.cosignature import cosignature_timestamp
from comity.audit.emergencies import EmergencyRecord
from comity.audit.errors import AuditError
from comity.audit.quorum import note_cosignatures
from comity.sdk.console.charts import bars_by_day, horizontal_bars
from comity.sdk.console.mirror import EntryRow, Mirror
from comity.sdk.console.words import KIND_WORDS, OUTCOME_WORDS, RuleText, rule_name

__all__ = ["EntryView", "entry_view", "overview", "witness_age"]

# Fields never shown: commitments open only with the openings kept beside the log, and
# signatures and sealed parts mean nothing to a reader.
_HIDDEN = {
    "selector_commitments",
    "justification_commitment",
    "target_commitment",
    "sealed",
    "node_signature",
}


@dataclass(frozen=True)
class EntryView:
    """One entry as a page shows it."""

    row: EntryRow
    kind: str
    outcome: str
    rules: list[tuple[str, list[RuleText]]]
    fields: list[tuple[str, str]]


def entry_view(row: EntryRow, texts: Mapping[str, list[RuleText]]) -> EntryView:
    """Words for one entry: its kind, outcome, rules with their texts, and its other fields."""
    event = row.event
    codes: list[str] = []
    fields: list[tuple[str, str]] = []
    if event is not None:
        data = asdict(event)
        codes = list(data.get("rule_codes", ()))
        for code, rule in data.get("checks", ()):
            codes += [c for c in (code, rule) if c not in codes]
        if data.get("reason_code") and data["reason_code"] not in codes:
            codes.append(data["reason_code"])
        for name, value in data.items():
            if name in _HIDDEN or name in ("rule_codes", "checks") or value in ("", (), {}, None):
                continue
            fields.append((name.replace("_", " "), _text(value)))
    outcome = OUTCOME_WORDS.get(row.decision, row.decision.lower())
    if row.kind == "failed" and event is not None:
        outcome = f"not completed ({getattr(event, 'reason', '')})"
    return EntryView(
        row, KIND_WORDS.get(row.kind, row.kind), outcome, [(c, texts.get(c, [])) for c in codes], fields
    )


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in sorted(value.items()))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def witness_age(note: bytes, origin: str, now: datetime) -> tuple[datetime | None, float | None]:
    """When the newest cosignature on the verified checkpoint was made, and how long ago (seconds)."""
    try:
        stamps = [cosignature_timestamp(s) for s in note_cosignatures(note, origin)]
    except AuditError:
        return None, None
    if not stamps:
        return None, None
    newest = datetime.fromtimestamp(max(stamps), UTC)
    return newest, (now - newest).total_seconds()


def overview(mirror: Mirror, *, now: datetime, days: int = 30) -> dict[str, Any]:
    """Counts and charts for the overview page."""
    first_day = (now - timedelta(days=days - 1)).date().isoformat()
    per_day: dict[str, dict[str, int]] = {
        (now - timedelta(days=days - 1 - i)).date().isoformat(): {} for i in range(days)
    }
    for day, decision, n in mirror.counts(
        "SELECT day, decision, count(*) FROM v WHERE kind = 'decision' AND day >= ? GROUP BY day, decision",
        first_day,
    ):
        if day in per_day:
            per_day[day][OUTCOME_WORDS.get(decision, decision)] = n
    by_rule = mirror.counts(
        "SELECT r.rule, count(*) FROM v JOIN entry_rules r ON r.idx = v.idx "
        "WHERE v.kind IN ('decision', 'refused', 'node_decision') AND v.decision != 'ALLOW' "
        "GROUP BY r.rule ORDER BY count(*) DESC LIMIT 12"
    )
    by_agency = _split(mirror, "agency", "kind = 'decision'")
    by_node = mirror.counts(
        "SELECT node, kind, count(*) FROM v WHERE kind IN ('disclosed', 'failed') GROUP BY node, kind"
    )
    nodes: dict[str, dict[str, int]] = {}
    for node, kind, n in by_node:
        nodes.setdefault(node, {})["disclosed" if kind == "disclosed" else "not completed"] = n
    kinds = dict(mirror.counts("SELECT kind, count(*) FROM v GROUP BY kind"))
    record = EmergencyRecord()
    for (idx,) in mirror.counts("SELECT idx FROM v WHERE kind IN ('emergency', 'validated') ORDER BY idx"):
        row = mirror.entry(idx)
        if row is not None and row.event is not None:
            record.apply(row.event)
    return {
        "kinds": [(KIND_WORDS.get(k, k), k, n) for k, n in sorted(kinds.items())],
        "total": sum(kinds.values()),
        "chart_days": bars_by_day(
            f"Gateway decisions per day, last {days} days", list(per_day.items()), ["allowed", "refused"]
        ),
        "chart_rules": horizontal_bars(
            "Refusals by rule or check", [(rule_name(r), {"count": n}) for r, n in by_rule], ["count"]
        ),
        "chart_agencies": horizontal_bars(
            "Decisions by requesting agency", list(by_agency.items()), ["allowed", "refused"]
        ),
        "chart_nodes": horizontal_bars(
            "Answers by node", sorted(nodes.items()), ["disclosed", "not completed"]
        ),
        "by_rule": by_rule,
        "emergencies": [
            {"use": u, "status": u.describe(now), "overdue": u.overdue(now)}
            for u in sorted(record, key=lambda u: u.first_used, reverse=True)
        ],
    }


def _split(mirror: Mirror, column: str, condition: str) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    sql = f"SELECT {column}, decision, count(*) FROM v WHERE {condition} GROUP BY {column}, decision"  # noqa: S608
    for key, decision, n in mirror.counts(sql):
        found.setdefault(key, {})[OUTCOME_WORDS.get(decision, decision)] = n
    return dict(sorted(found.items()))
