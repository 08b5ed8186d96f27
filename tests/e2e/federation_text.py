"""Federation file text for e2e tests: the demo's file with every dated key valid from ``START``."""

from __future__ import annotations

import re

START = "2026-01-01T00:00:00Z"


def format2(text: str) -> str:
    """The demo's file in format 2, each dated key history starting at ``START`` (no key changes).

    The demo writes format 2 with open histories (no ``valid_from``); a format-1 file's single
    keys become one-key histories.
    """
    if "\nformat = 2\n" in text:
        return re.sub(
            r"(\[\[(gateway\.decision_keys|members\.nodes\.response_keys|members\.nodes\.witness_keys)\]\]\n"
            r'key = ".*"\n)',
            rf"\1valid_from = {START}\n",
            text,
        )
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
