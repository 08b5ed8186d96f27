"""The precedent file a FETCH after a private hit reads: what it accepts and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comity.core.errors import InvalidArgument
from comity.sdk.private import PRECEDENT_FORMAT, load_precedent
from comity.sdk.query import Selector

HIT = Selector("email", "a@example.org")
MISS = Selector("email", "b@example.org")


def _write(path: Path, **changes: object) -> Path:
    doc: dict[str, object] = {
        "format": PRECEDENT_FORMAT,
        "query_id": "q-1",
        "node_id": "ca-node",
        "selectors": [
            {"type": "email", "value": HIT.value, "hit": True, "salt": "11" * 32},
            {"type": "email", "value": MISS.value, "hit": False, "salt": "22" * 32},
        ],
    }
    doc.update(changes)
    path.write_text(json.dumps(doc))
    return path


def test_a_hit_selector_is_named_with_its_salt(tmp_path: Path) -> None:
    precedent = load_precedent(_write(tmp_path / "p.json"), node="ca-node", selectors=[HIT])
    assert precedent.query_id == "q-1" and list(precedent.salts) == [bytes.fromhex("11" * 32)]


@pytest.mark.parametrize(
    ("selectors", "node", "words"),
    [
        ([MISS], "ca-node", "did not hit"),
        ([Selector("email", "c@example.org")], "ca-node", "was not tested"),
        ([HIT], "us-node", "asked ca-node, not us-node"),
    ],
)
def test_a_fetch_the_check_does_not_cover_is_refused_before_sending(
    tmp_path: Path, selectors: list[Selector], node: str, words: str
) -> None:
    with pytest.raises(InvalidArgument, match=words):
        load_precedent(_write(tmp_path / "p.json"), node=node, selectors=selectors)


@pytest.mark.parametrize("text", ["", "{}", "[1]", json.dumps({"format": "other/1"})])
def test_a_file_that_is_not_a_precedent_is_refused_in_words(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(InvalidArgument, match="is not a private hit check's precedent file"):
        load_precedent(path, node="ca-node", selectors=[HIT])


def test_a_bad_salt_and_a_missing_file_are_refused_in_words(tmp_path: Path) -> None:
    bad = _write(
        tmp_path / "bad.json", selectors=[{"type": "email", "value": HIT.value, "hit": True, "salt": "zz"}]
    )
    with pytest.raises(InvalidArgument, match="is not a private hit check's precedent file"):
        load_precedent(bad, node="ca-node", selectors=[HIT])
    with pytest.raises(InvalidArgument, match="no such precedent file"):
        load_precedent(tmp_path / "absent.json", node="ca-node", selectors=[HIT])
