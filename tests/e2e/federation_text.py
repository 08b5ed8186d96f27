"""Federation file text for e2e tests: the demo's format-1 file turned into format 2."""

from __future__ import annotations

import re

START = "2026-01-01T00:00:00Z"


def format2(text: str) -> str:
    """The demo's format-1 file in format 2: each single key a one-key history (no key changes)."""
    decision = re.search(r'\ndecision_key = (".*")\n', text)
    log = re.search(r'\n\[gateway.log\]\norigin = (".*")\nkey = (".*")\n', text)
    name = re.search(r'\nname = ".*"\n', text)
    assert decision and log and name
    text = text.replace(decision.group(0), "\n")
    text = text.replace(
        log.group(0),
        f"\n[gateway.log]\norigin = {log.group(1)}\n\n[[gateway.log.keys]]\nkey = {log.group(2)}\n"
        f"\n[[gateway.decision_keys]]\nkey = {decision.group(1)}\nvalid_from = {START}\n",
    )
    text = re.sub(
        r'response_key = (".*")\nwitness_key = (".*")\n',
        rf"\n[[members.nodes.response_keys]]\nkey = \1\nvalid_from = {START}\n"
        rf"\n[[members.nodes.witness_keys]]\nkey = \2\nvalid_from = {START}\n",
        text,
    )
    return text.replace(
        name.group(0), name.group(0) + "format = 2\nversion = 1\nexpires = 2030-01-01T00:00:00Z\n"
    )
