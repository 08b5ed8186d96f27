"""Telemetry installed once for the operations tests, with in-memory exporters to read back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from comity.core.telemetry import Telemetry, TelemetryConfig, setup_telemetry


@dataclass
class Captured:
    """What the process's telemetry exported, for assertions."""

    telemetry: Telemetry
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader


@pytest.fixture(scope="session")
def _installed() -> Iterator[Captured]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    config = TelemetryConfig(service_name="comity-test", sample_ratio=1.0, log_format="json")
    telemetry = setup_telemetry(config, span_exporters=[spans], metric_readers=[reader])
    if telemetry.config != config:
        pytest.skip("telemetry was set up earlier in this process with another configuration")
    # setup_telemetry configured logging for a server process; give pytest its own back.
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    yield Captured(telemetry, spans, reader)


@pytest.fixture
def captured(_installed: Captured) -> Captured:
    """The installed telemetry, with the spans of earlier tests cleared."""
    _installed.spans.clear()
    return _installed
