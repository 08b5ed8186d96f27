"""Structured logs: one JSON object per line, carrying the current trace and span ids.

Log lines are read by people other than the query's parties (operators, log shippers), so
they follow the same rule as spans and metrics: no selector value or personal data. The
message is the code's own text; structured fields given through ``extra=`` pass the same
allow-list as span attributes (:func:`comity.core.telemetry.safe_attributes`) and anything
else is dropped::

    _log.info("decision logged", extra={"query_id": qid, "outcome": "deny"})
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

from opentelemetry import trace

from comity.core.telemetry import safe_attributes

__all__ = ["JsonFormatter", "LogFormat", "TextFormatter", "configure_logging", "trace_ids"]

LogFormat = Literal["json", "text"]

# Attributes every LogRecord has; whatever else a record carries came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_HANDLER_MARK = "_comity_handler"


def trace_ids() -> tuple[str, str]:
    """The current (trace id, span id) as lowercase hex, or empty strings outside any span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return "", ""
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    given = {k: v for k, v in vars(record).items() if k not in _STANDARD}
    return dict(safe_attributes(given)) if given else {}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, trace ids, allowed fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single line of JSON."""
        trace_id, span_id = trace_ids()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if trace_id:
            line["trace_id"] = trace_id
            line["span_id"] = span_id
        line.update(_extras(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A readable line for a terminal, with the trace id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The usual text line, followed by allowed fields and ``trace=<id>``."""
        text = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        trace_id, _ = trace_ids()
        tail = " ".join(part for part in (fields, f"trace={trace_id}" if trace_id else "") if part)
        if not tail:
            return text
        # Put the fields on the first line so a traceback below stays intact.
        first, sep, rest = text.partition("\n")
        return f"{first} {tail}{sep}{rest}"


def configure_logging(level: str = "INFO", fmt: LogFormat = "json", *, stream: IO[str] | None = None) -> None:
    """Send the root logger's records to ``stream`` (stderr) as JSON or text, at ``level``.

    Calling it again replaces the handler it installed before, so it is safe to call once per
    process and again from tests.
    """
    if fmt not in ("json", "text"):
        raise ValueError(f"log format must be json or text, not {fmt!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(level.upper())
