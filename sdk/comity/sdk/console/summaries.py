"""The overview's counts and the transparency report, rebuilt in a thread of their own.

Both read every verified entry (the report decodes each one), which over 10^5 entries takes from
a second (overview) to many seconds (report) on a loaded machine: too long for a page request.
:class:`Summaries` keeps the newest of each, keyed by the verified size (and, for the overview's
deadlines, the minute); :meth:`Summaries.start` runs a thread that rebuilds whichever is out of
date. Meanwhile a page shows the one it has, which says up to which size it counts. Without the
thread (tests), or before the first one exists, a page builds it itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from comity.sdk.console.mirror import Mirror
from comity.sdk.console.report import mirror_report
from comity.sdk.console.views import overview
from comity.sdk.transparency import TransparencyReport

__all__ = ["Summaries"]

_log = logging.getLogger("comity.console")


class Summaries:
    """The newest overview and report, each with the verified size it counts."""

    def __init__(
        self, mirror: Mirror, *, origin: str, offence_class: Callable[[str], str], interval: float = 1.0
    ) -> None:
        self._mirror = mirror
        self._origin = origin
        self._offence_class = offence_class
        self._interval = interval
        self._lock = threading.Lock()
        self._overview: tuple[tuple[int, str], dict[str, Any]] | None = None
        self._report: tuple[int, TransparencyReport] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _minute(now: datetime) -> str:
        return now.strftime("%Y-%m-%dT%H:%M")

    def _build_overview(self) -> tuple[tuple[int, str], dict[str, Any]]:
        now = datetime.now(UTC)
        size = self._mirror.head().size
        data = overview(self._mirror, now=now, origin=self._origin)
        built = ((size, self._minute(now)), data | {"size": size})
        with self._lock:
            if self._overview is None or self._overview[0] <= built[0]:
                self._overview = built
        return built

    def _build_report(self) -> tuple[int, TransparencyReport]:
        size = self._mirror.head().size
        built = (size, mirror_report(self._mirror, self._offence_class))
        with self._lock:
            if self._report is None or self._report[0] <= size:
                self._report = built
        return built

    def overview(self) -> dict[str, Any]:
        """The newest overview (its ``size`` key: the verified size it counts)."""
        with self._lock:
            kept = self._overview
        wanted = (self._mirror.head().size, self._minute(datetime.now(UTC)))
        if kept is None or (kept[0] != wanted and not self.running):
            kept = self._build_overview()
        return kept[1]

    def report(self) -> tuple[int, TransparencyReport]:
        """The newest transparency report and the verified size it counts."""
        with self._lock:
            kept = self._report
        if kept is None or (kept[0] != self._mirror.head().size and not self.running):
            kept = self._build_report()
        return kept

    def refresh(self) -> None:
        """Rebuild whichever summary is out of date."""
        size = self._mirror.head().size
        with self._lock:
            overview_key = self._overview[0] if self._overview else None
            report_size = self._report[0] if self._report else None
        if overview_key != (size, self._minute(datetime.now(UTC))):
            self._build_overview()
        if report_size != size:
            self._build_report()

    @property
    def running(self) -> bool:
        """Whether the thread keeps the summaries up to date."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Rebuild the summaries in a background thread until :meth:`stop`."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="console-summaries", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (waits for a rebuild under way)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # a failed rebuild must not end the thread; the next try may succeed
                _log.exception("the overview or the report could not be rebuilt")
            self._stop.wait(self._interval)
