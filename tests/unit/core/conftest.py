"""Shared fixtures of the core tests."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

Format2 = Callable[..., str]


def _format2(
    text: str, *, header: str = "version = 1\nexpires = 2030-01-01T00:00:00Z\n", extra: str = ""
) -> str:
    """The format-1 file ``text`` in format 2: every single key becomes a one-key history.

    ``header`` holds the top-level keys after ``format = 2`` (version, expiry, ...); ``extra``
    is appended (tables such as ``[signing]`` or ``[witness_policy]``).
    """
    decision = re.search(r'\ndecision_key = (".*")\n', text)
    log = re.search(r'\n\[gateway.log\]\norigin = (".*")\nkey = (".*")\n', text)
    assert decision and log
    text = text.replace(decision.group(0), "\n")
    text = text.replace(
        log.group(0),
        f"\n[gateway.log]\norigin = {log.group(1)}\n\n[[gateway.log.keys]]\nkey = {log.group(2)}\n"
        f"\n[[gateway.decision_keys]]\nkey = {decision.group(1)}\nvalid_from = 2026-01-01T00:00:00Z\n",
    )
    text = re.sub(
        r'response_key = (".*")\nwitness_key = (".*")\n',
        r"\n[[members.nodes.response_keys]]\nkey = \1\nvalid_from = 2026-01-01T00:00:00Z\n"
        r"\n[[members.nodes.witness_keys]]\nkey = \2\nvalid_from = 2026-01-01T00:00:00Z\n",
        text,
    )
    name = re.search(r'\nname = ".*"\n', text)
    assert name
    text = text.replace(name.group(0), name.group(0) + "format = 2\n" + header, 1)
    return text + extra


@pytest.fixture(scope="session")
def format2() -> Format2:
    """Turns a format-1 federation file's text into format 2 (see :func:`_format2`)."""
    return _format2
