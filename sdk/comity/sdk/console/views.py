"""What each page shows, computed from the mirror: pure reads, no web framework here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import DecodeError

from comity.audit.cosignature import cosignature_timestamp
from comity.audit.emergencies import EmergencyRecord
from comity.audit.errors import AuditError
from comity.audit.events import DisclosedEvent
from comity.audit.quorum import note_cosignatures
from comity.core.dsse import PAYLOAD_NODE_STATEMENT
from comity.sdk.console.charts import Chart, Span, bars_by_day, horizontal_bars, timeline
from comity.sdk.console.mirror import EntryRow, Mirror
from comity.sdk.console.words import KIND_WORDS, OUTCOME_WORDS, RuleText, rule_name
from comity.sdk.transparency import TransparencyReport
from comity.v1 import comity_pb2 as pb

__all__ = [
    "EntryView",
    "WitnessLine",
    "entry_view",
    "overview",
    "report_charts",
    "witness_age",
    "witness_lines",
]

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
    #: A disclosure's use restrictions, from the node statement its entry logged.
    restrictions: list[pb.UseRestriction] = field(default_factory=list)


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
        row,
        KIND_WORDS.get(row.kind, row.kind),
        outcome,
        [(c, texts.get(c, [])) for c in codes],
        fields,
        _restrictions(event) if isinstance(event, DisclosedEvent) else [],
    )


def _restrictions(event: DisclosedEvent) -> list[pb.UseRestriction]:
    """The use restrictions the node stated; the statement's signature is the receipt check's to verify."""
    try:
        envelope = pb.Envelope.FromString(bytes.fromhex(event.node_signature))
        if envelope.payload_type != PAYLOAD_NODE_STATEMENT:
            return []
        return list(pb.NodeStatement.FromString(envelope.payload).use_restrictions)
    except (ValueError, DecodeError):
        return []


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
    lines = witness_lines(note, origin, now)
    if not lines:
        return None, None
    newest = max(lines, key=lambda w: w.cosigned_at)
    return newest.cosigned_at, newest.age


@dataclass(frozen=True, slots=True)
class WitnessLine:
    """One witness's cosignature on the verified checkpoint: who, when, and how long ago (seconds)."""

    witness: str
    cosigned_at: datetime
    age: float


def witness_lines(note: bytes, origin: str, now: datetime) -> list[WitnessLine]:
    """The cosignatures on the verified quorum checkpoint (checked when the mirror took it), newest first."""
    try:
        signatures = note_cosignatures(note, origin)
        found = [(s.name, datetime.fromtimestamp(cosignature_timestamp(s), UTC)) for s in signatures]
    except AuditError:
        return []
    return sorted(
        (WitnessLine(name, at, (now - at).total_seconds()) for name, at in found),
        key=lambda w: w.cosigned_at,
        reverse=True,
    )


def overview(mirror: Mirror, *, now: datetime, days: int = 30, origin: str = "") -> dict[str, Any]:
    """Counts and charts for the overview page (each chart with its numbers as a table)."""
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
    nodes: dict[str, dict[str, int]] = {}
    for node, kind, n in mirror.counts(
        "SELECT node, kind, count(*) FROM v WHERE kind IN ('disclosed', 'failed') "
        "OR (kind = 'node_decision' AND decision = 'DENY') GROUP BY node, kind"
    ):
        series = {"disclosed": "disclosed", "failed": "not completed"}.get(kind, "refused by the node")
        nodes.setdefault(node, {})[series] = n
    kinds = dict(mirror.counts("SELECT kind, count(*) FROM v GROUP BY kind"))
    record = EmergencyRecord()
    for (idx,) in mirror.counts("SELECT idx FROM v WHERE kind IN ('emergency', 'validated') ORDER BY idx"):
        row = mirror.entry(idx)
        if row is not None and row.event is not None:
            record.apply(row.event)
    uses = sorted(record, key=lambda u: u.first_used, reverse=True)
    charts: list[Chart] = [
        bars_by_day(
            f"Gateway decisions per day, last {days} days", list(per_day.items()), ["allowed", "refused"]
        ),
        horizontal_bars(
            "Refusals by rule or check",
            [(rule_name(r), {"count": n}) for r, n in by_rule],
            ["count"],
            label="Rule or check",
            plural="rules or checks",
        ),
        horizontal_bars(
            "Decisions by requesting agency",
            list(by_agency.items()),
            ["allowed", "refused"],
            label="Agency",
            plural="agencies",
        ),
        horizontal_bars(
            "Answers by node",
            sorted(nodes.items()),
            ["disclosed", "not completed", "refused by the node"],
            label="Node",
        ),
        timeline(
            "Emergency orders and their review deadlines",
            [
                Span(
                    u.order_id,
                    u.first_used,
                    u.validate_by,
                    "overdue" if u.overdue(now) else u.status,
                    u.describe(now),
                )
                for u in uses[:15]
            ],
            now,
            label="Order",
        ),
    ]
    return {
        "kinds": [(KIND_WORDS.get(k, k), k, n) for k, n in sorted(kinds.items())],
        "total": sum(kinds.values()),
        "charts": charts,
        "by_rule": by_rule,
        "emergencies": [{"use": u, "status": u.describe(now), "overdue": u.overdue(now)} for u in uses],
        "witnesses": witness_lines(mirror.head().note, origin, now) if origin else [],
    }


def _split(mirror: Mirror, column: str, condition: str) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    sql = f"SELECT {column}, decision, count(*) FROM v WHERE {condition} GROUP BY {column}, decision"  # noqa: S608
    for key, decision, n in mirror.counts(sql):
        found.setdefault(key, {})[OUTCOME_WORDS.get(decision, decision)] = n
    return dict(sorted(found.items()))


def report_charts(report: TransparencyReport) -> list[Chart]:
    """The transparency report's charts: the same counts as its tables and exports."""
    by_offence: dict[str, dict[str, int]] = {}
    by_agency: dict[str, dict[str, int]] = {}
    for (agency, _node, offence, decision), n in report.decisions.items():
        outcome = OUTCOME_WORDS.get(decision, decision)
        by_offence.setdefault(offence, {}).setdefault(outcome, 0)
        by_offence[offence][outcome] += n
        by_agency.setdefault(agency, {}).setdefault(outcome, 0)
        by_agency[agency][outcome] += n
    nodes = sorted(set(report.disclosures) | set(report.failures))
    return [
        horizontal_bars(
            "Queries decided by offence class",
            sorted(by_offence.items()),
            ["allowed", "refused"],
            label="Offence class",
            plural="offence classes",
        ),
        horizontal_bars(
            "Queries decided by requesting agency",
            sorted(by_agency.items()),
            ["allowed", "refused"],
            label="Agency",
            plural="agencies",
        ),
        horizontal_bars(
            "Refused decisions by rule",
            [
                (rule_name(r), {"count": n})
                for r, n in sorted(report.refusals_by_rule.items(), key=lambda kv: -kv[1])
            ],
            ["count"],
            label="Rule",
        ),
        horizontal_bars(
            "Answers and failures by node",
            [(n, {"disclosed": report.disclosures[n], "not completed": report.failures[n]}) for n in nodes],
            ["disclosed", "not completed"],
            label="Node",
        ),
    ]
