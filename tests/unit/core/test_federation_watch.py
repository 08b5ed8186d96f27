"""The running component's federation file: a newer version replaces it, anything else is refused."""

from __future__ import annotations

import logging
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from comity.core.errors import ComityError
from comity.core.federation import Federation
from comity.core.federation_watch import FederationWatch
from comity.sdk.demo.setup import build_demo_federation


def _versioned(text: str, version: int, expires: str = "2030-01-01T00:00:00Z") -> str:
    return re.sub(
        r"\nversion = \d+\nexpires = \S+\n", f"\nversion = {version}\nexpires = {expires}\n", text, count=1
    )


def _write(file: Path, text: str, tick: int) -> None:
    file.write_text(text)
    os.utime(file, ns=(tick * 1_000_000_000, tick * 1_000_000_000))  # a new stamp each time


@pytest.fixture(scope="module")
def federation_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_federation(
        Path(tmp_path_factory.mktemp("watch")), people=3, seed=2
    ).layout.federation_file


def test_without_a_signing_role_only_a_higher_version_in_date_is_taken(
    federation_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    original = federation_file.read_text()
    try:
        _write(federation_file, _versioned(original, 5), 1)
        now = datetime(2026, 12, 1, tzinfo=UTC)
        watch = FederationWatch(federation_file, Federation.load(federation_file), clock=lambda: now)
        seen: list[int | None] = []
        watch.on_change(lambda f: seen.append(f.version))
        assert not watch.check()  # unchanged
        with caplog.at_level(logging.ERROR, logger="comity.core.federation_watch"):
            _write(federation_file, _versioned(original, 4), 2)
            assert not watch.check()
            _write(federation_file, _versioned(original, 6, "2026-11-30T00:00:00Z"), 3)
            assert not watch.check()
            _write(federation_file, "garbage [[", 4)
            assert not watch.check()
        alerts = [r.getMessage() for r in caplog.records]
        assert len(alerts) == 3 and all(a.startswith("ALERT: federation file") for a in alerts)
        assert "FEDERATION_VERSION" in alerts[0] and "FEDERATION_EXPIRED" in alerts[1]
        assert watch.current.version == 5 and seen == []
        _write(federation_file, _versioned(original, 7), 5)
        assert watch.check()
        assert watch.current.version == 7 and seen == [7]
    finally:
        federation_file.write_text(original)


def test_an_expired_file_refuses_every_request(federation_file: Path) -> None:
    federation = Federation.load(federation_file)
    assert federation.expires is not None
    later = federation.expires + timedelta(seconds=1)
    watch = FederationWatch(federation_file, federation, clock=lambda: later)
    with pytest.raises(ComityError) as caught:
        watch.require_current()
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.check_codes == ["FEDERATION_FILE_EXPIRED"]
    assert "expired" in caught.value.message
    before = FederationWatch(
        federation_file, federation, clock=lambda: federation.expires - timedelta(seconds=1)
    )  # type: ignore[operator]
    assert before.require_current() is federation
