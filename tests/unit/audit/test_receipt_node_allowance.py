"""The console's receipt check refuses an answer's receipt that holds no signed decision of the
node to give it (``comity audit verify-receipt`` does too: tests/e2e/test_receipts.py)."""

from __future__ import annotations

from pathlib import Path

from receipt_world import World, world

from comity.audit.receipt_trust import KeysTrust
from comity.sdk.console.mirror import Mirror
from comity.sdk.console.receipt_check import check_receipt
from comity.sdk.receipts import export_receipt
from comity.v1 import comity_pb2 as pb


def _without_allowance(receipt: pb.Receipt) -> pb.Receipt:
    """``receipt`` as a gateway that answered around the node would give it: every other entry proved."""
    stripped = pb.Receipt()
    stripped.CopyFrom(receipt)
    del stripped.entries[:]
    stripped.entries.extend(e for e in receipt.entries if b'"kind":"node_decision"' not in e.entry)
    stripped.ClearField("node_decision")
    return stripped


def _exported(receipt: pb.Receipt, path: Path) -> str:
    return export_receipt(receipt, path).read_text()


def _trust(w: World) -> KeysTrust:
    return KeysTrust(w.log.verifier, {"ca-node": w.node_key.verifying_key})


def test_the_console_checks_an_answer_by_the_nodes_allowance(tmp_path: Path) -> None:
    w = world()
    receipt = w.receipt("q1", w.answered("q1"))
    mirror = Mirror(tmp_path / "mirror.db")
    good = check_receipt(_exported(receipt, tmp_path / "good.json"), _trust(w), origin="o", mirror=mirror)
    assert good.verdict == "pending" and [e.kind for e in good.entries][1] == "Node decision"

    stripped = _exported(_without_allowance(receipt), tmp_path / "stripped.json")
    verdict = check_receipt(stripped, _trust(w), origin="o", mirror=mirror)
    assert verdict.verdict == "invalid" and verdict.check == "RECEIPT_NODE_DECISION_MISSING"
    assert "holds no entry of the node's signed decision to answer it" in verdict.lines[0]
