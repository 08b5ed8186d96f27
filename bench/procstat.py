"""CPU time and resident memory of processes, read from ``/proc`` (Linux; no extra packages)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["cpu_seconds", "cpu_times", "rss_bytes", "total_cpu_seconds"]

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far, all its threads included."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    # After the name, fields start at 3 (state): utime is field 14 and stime field 15.
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far, all its threads included."""
    return sum(cpu_times(pid))


def total_cpu_seconds(pids: Iterable[int]) -> float:
    """The sum of :func:`cpu_seconds` over ``pids``."""
    return sum(cpu_seconds(pid) for pid in pids)


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
