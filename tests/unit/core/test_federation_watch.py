"""The running component's federation file: a newer version replaces it, anything else is refused."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from comity.core.errors import ComityError, ConfigError
from comity.core.federation import Federation
from comity.core.federation_watch import FederationWatch
from comity.sdk.demo.setup import build_demo_federation


def _versioned(text: str, version: int, expires: str = "2030-01-01T00:00:00Z") -> str:
    return re.sub(
        r"\nversion = \d+\nexpires = \S+\n", f"\nversion = {version}\nexpires = {expires}\n", text, count=1
    )


def _read(file: Path) -> str:
    return file.read_text()


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


def test_a_version_a_preparer_cannot_build_is_refused_whole_and_tried_again_when_rewritten(
    federation_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    original = federation_file.read_text()
    try:
        _write(federation_file, _versioned(original, 5), 1)
        now = datetime(2026, 12, 1, tzinfo=UTC)
        watch = FederationWatch(federation_file, Federation.load(federation_file), clock=lambda: now)
        in_use: dict[str, int | None] = {"first": 5, "second": 5}
        listened: list[int | None] = []
        missing = {"bundle": True}

        def first(new: Federation) -> Callable[[], None]:
            return lambda: in_use.update(first=new.version)

        def second(new: Federation) -> Callable[[], None]:
            if missing["bundle"]:
                raise ConfigError(
                    "the gateway bundle of agreement 'x' cannot be loaded", field="agreements[0]"
                )
            return lambda: in_use.update(second=new.version)

        watch.prepare_with(first)
        watch.prepare_with(second)
        watch.on_change(lambda f: listened.append(f.version))
        with caplog.at_level(logging.ERROR, logger="comity.core.federation_watch"):
            _write(federation_file, _versioned(original, 6), 2)
            assert not watch.check()
        # Nothing of version 6 is in use: not the first preparer's part, not the listeners.
        assert in_use == {"first": 5, "second": 5} and listened == [] and watch.current.version == 5
        (alert,) = [r.getMessage() for r in caplog.records]
        assert alert.startswith("ALERT: federation file") and "(version 6 cannot be put in use)" in alert
        assert "cannot be loaded" in alert and "still serving version 5" in alert
        assert not watch.check()  # unchanged: not tried again
        missing["bundle"] = False  # the operator puts the bundle in place, and writes the file again
        _write(federation_file, _versioned(original, 6), 3)
        assert watch.check()
        assert in_use == {"first": 6, "second": 6} and listened == [6] and watch.current.version == 6
    finally:
        federation_file.write_text(original)


async def test_polling_prepares_off_the_event_loop(federation_file: Path) -> None:
    original = _read(federation_file)
    try:
        _write(federation_file, _versioned(original, 5), 1)
        watch = FederationWatch(federation_file, Federation.load(federation_file))
        loop_thread = threading.get_ident()
        seen: list[tuple[str, bool]] = []

        def prepare(new: Federation) -> Callable[[], None]:
            seen.append(("prepare", threading.get_ident() == loop_thread))
            return lambda: seen.append(("swap", threading.get_ident() == loop_thread))

        watch.prepare_with(prepare)
        _write(federation_file, _versioned(original, 6), 2)
        assert await watch.check_async()
        assert seen == [("prepare", False), ("swap", True)]
    finally:
        _write(federation_file, original, 3)
