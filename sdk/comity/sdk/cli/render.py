"""Rendering results and errors for people (rich) and for scripts (JSON)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from comity.core.errors import Attempt, ComityError, PermissionDenied
from comity.sdk.private import PrivateResult
from comity.sdk.result import Result

__all__ = [
    "attempts_json",
    "error_json",
    "make_console",
    "print_attempts",
    "print_error",
    "print_private_result",
    "print_result",
    "private_result_json",
    "result_json",
]

_FIELD_WIDTH = 48
# Piped output is read by scripts: never wrap it at a terminal's width, never cut an identifier.
_PIPE_WIDTH = 10_000


def make_console(*, stderr: bool = False) -> Console:
    """A console that wraps and abbreviates for a person at a terminal, and never when piped."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, width=_PIPE_WIDTH, soft_wrap=True)


def result_json(result: Result) -> dict[str, Any]:
    """A JSON-ready dict of a result (records, restrictions, receipt summary)."""
    return {
        "query_id": result.query_id,
        "node": result.node_id,
        "hit": result.hit,
        "hit_reference": result.hit_reference,
        "truncated": result.truncated,
        "records": [
            {
                "record_id": r.record_id,
                "record_type": r.record_type,
                "category": r.category,
                "observed_at": r.observed_at.isoformat() if r.observed_at else None,
                "fields": dict(r.fields),
            }
            for r in result.records
        ],
        "use_restrictions": [
            {"code": u.code, "description": u.description, "legal_basis": u.legal_basis}
            for u in result.use_restrictions
        ],
        "receipt": {
            "query_digest": result.receipt.query_digest.hex(),
            "log_entries": [e.inclusion.leaf_index for e in result.receipt.entries],
            "checkpoint_size": max((e.inclusion.tree_size for e in result.receipt.entries), default=0),
        },
        "attempts": attempts_json(result.attempts),
    }


def attempts_json(attempts: tuple[Attempt, ...]) -> list[dict[str, str]]:
    """Every submission of a request, in order: query id, gateway address, how it ended."""
    return [{"query_id": a.query_id, "address": a.address, "outcome": a.outcome} for a in attempts]


def print_attempts(console: Console, attempts: tuple[Attempt, ...]) -> None:
    """One line when the request was sent more than once, naming every earlier attempt (each is
    a query of its own in the log); nothing otherwise."""
    if len(attempts) < 2:
        return
    last = attempts[-1]
    earlier = "; ".join(f"{_attempt(a)} at {a.address} ({a.outcome})" for a in attempts[:-1])
    console.print(
        f"resubmitted: {_attempt(last)} went to {last.address} after {earlier}", markup=False, highlight=False
    )


def _attempt(attempt: Attempt) -> str:
    return f"query {attempt.query_id}" if attempt.query_id else "the request"


def private_result_json(result: PrivateResult) -> dict[str, Any]:
    """A JSON-ready dict of a private hit check's answer, per selector."""
    return {
        "query_id": result.query_id,
        "node": result.node_id,
        "kind": "private-hit-check",
        "hit": result.hit,
        "selectors": [
            {"type": h.selector.type, "value": h.selector.value, "hit": h.hit} for h in result.hits
        ],
        "epoch": result.epoch,
        "false_positive_rate": result.false_positive_rate,
        "false_positive_bound": result.false_positive_bound,
        "receipt": {
            "query_digest": result.receipt.query_digest.hex(),
            "log_entries": [e.inclusion.leaf_index for e in result.receipt.entries],
        },
        "attempts": attempts_json(result.attempts),
    }


def print_private_result(console: Console, result: PrivateResult) -> None:
    """A readable account of a verified private hit check."""
    for h in result.hits:
        verdict = "HIT" if h.hit else "no hit"
        console.print(
            f"[bold]{result.node_id}[/]: {h.selector.type}:{_short(h.selector.value, console)}: {verdict}"
        )
    console.print(
        f"[dim]private: the node saw only blinded selectors; its proof verified (epoch {result.epoch}); "
        f"a selector not held answers hit with probability at most {result.false_positive_bound:.0e} "
        f"({result.false_positive_rate:.0e} per segment tested); query {result.query_id}[/]"
    )


def error_json(err: ComityError) -> dict[str, Any]:
    """A JSON-ready dict of an error, with rule codes for refusals."""
    out: dict[str, Any] = {"error": type(err).__name__, "code": err.code.name, "message": err.message}
    if err.violations or isinstance(err, PermissionDenied):
        out["rules"] = [
            {"code": v.code, "check": v.check, "message": v.message, "legal_basis": v.legal_basis}
            for v in err.violations
        ]
        out["bundle_digest"] = err.bundle_digest
    if err.attempts:
        out["attempts"] = attempts_json(err.attempts)
    return out


def _short(value: str, console: Console) -> str:
    if not console.is_terminal or len(value) <= _FIELD_WIDTH:
        return value
    return value[: _FIELD_WIDTH - 1] + "…"


def print_result(console: Console, result: Result) -> None:
    """A readable account of a verified result."""
    if not result.records:
        verdict = "HIT" if result.hit else "no hit"
        console.print(
            f"[bold]{result.node_id}[/]: {verdict}"
            + (f" (reference {result.hit_reference})" if result.hit_reference else "")
        )
    else:
        table = Table(title=f"{len(result.records)} record(s) from {result.node_id}", show_lines=False)
        for col in ("type", "category", "observed", "fields"):
            table.add_column(col, overflow="fold")
        for r in result.records:
            fields = "\n".join(f"{k}: {_short(v, console)}" for k, v in sorted(r.fields.items()))
            observed = r.observed_at.strftime("%Y-%m-%d %H:%M") if r.observed_at else ""
            table.add_row(r.record_type, r.category, observed, fields)
        console.print(table)
        if result.truncated:
            console.print("[yellow]The node capped the result; more records matched.[/]")
    if result.use_restrictions:
        lines = "\n".join(
            f"[bold]{u.code}[/]: {u.description} [dim]({u.legal_basis})[/]" for u in result.use_restrictions
        )
        console.print(Panel(lines, title="Use restrictions", border_style="yellow"))
    console.print(
        f"[dim]verified: node signature over {len(result.records)} record(s); query {result.query_id}[/]"
    )


def print_error(console: Console, err: ComityError) -> None:
    """A readable account of a refusal or failure, with every rule that fired."""
    # A status code means something only for an answer from a server; a local failure (a file,
    # a key, an option) is just an error.
    label = err.code.name if err.remote else "error"
    # Messages quote TOML tables ("[signing]"), which rich would take for markup and drop.
    console.print(f"[bold red]{label}[/]: {escape(err.message)}")
    if err.violations:
        table = Table(show_header=True)
        for col in ("rule", "why", "legal basis"):
            table.add_column(col, overflow="fold")
        for v in err.violations:
            table.add_row(v.code, v.message, v.legal_basis)
        console.print(table)
    if err.hint:
        console.print(f"[dim]hint: {escape(err.hint)}[/]")


def dumps(data: object) -> str:
    """Stable JSON for scripts."""
    return json.dumps(data, indent=2, sort_keys=True)
