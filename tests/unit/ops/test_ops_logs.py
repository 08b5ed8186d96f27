"""Structured logs: JSON lines with the trace id, fields through the allow-list."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from comity.core.logs import configure_logging
from comity.core.telemetry import span

if TYPE_CHECKING:
    from conftest import Captured

SELECTOR = "alice.martin@example.com"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_lines_carry_trace_and_span_ids(captured: Captured, restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    log = logging.getLogger("comity.gateway")
    with span("gateway.decide", query_id="q-7") as current:
        log.info("decision logged", extra={"query_id": "q-7", "outcome": "deny", "selector": SELECTOR})
    log.info("outside any span")
    inside, outside = (json.loads(line) for line in _lines(out))
    ctx = current.get_span_context()
    assert inside["trace_id"] == format(ctx.trace_id, "032x")
    assert inside["span_id"] == format(ctx.span_id, "016x")
    assert inside["message"] == "decision logged"
    assert inside["level"] == "INFO" and inside["logger"] == "comity.gateway"
    assert inside["comity.query_id"] == "q-7" and inside["comity.outcome"] == "deny"
    assert "trace_id" not in outside
    assert SELECTOR not in out.getvalue()


def test_level_filters_and_a_second_call_replaces_the_handler(restore_root: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", "json", stream=first)
    configure_logging("WARNING", "json", stream=second)
    log = logging.getLogger("comity.node")
    log.info("not shown")
    log.warning("shown")
    assert _lines(first) == []
    assert [json.loads(line)["message"] for line in _lines(second)] == ["shown"]


def test_text_format_keeps_fields_on_the_first_line(captured: Captured, restore_root: None) -> None:
    out = io.StringIO()
    configure_logging("DEBUG", "text", stream=out)
    with span("node.execute"):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("comity.node").exception("failed", extra={"node": "ca-node", "person": "Alice"})
    first, *rest = out.getvalue().splitlines()
    assert "failed" in first and "comity.node=ca-node" in first and "trace=" in first
    assert "Alice" not in out.getvalue()
    assert any("RuntimeError: boom" in line for line in rest)


def test_unknown_format_is_refused(restore_root: None) -> None:
    with pytest.raises(ValueError):
        configure_logging("INFO", "xml")  # type: ignore[arg-type]
