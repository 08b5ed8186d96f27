"""What pages show: a disclosure's use restrictions, and the overview and report kept up to date."""

from __future__ import annotations

import threading
from pathlib import Path

from comity.audit.events import DisclosedEvent
from comity.core.dsse import PAYLOAD_NODE_DECISION, PAYLOAD_NODE_STATEMENT
from comity.sdk.console.mirror import EntryRow
from comity.sdk.console.views import entry_view
from comity.v1 import comity_pb2 as pb


def _row(node_signature: str) -> EntryRow:
    event = DisclosedEvent(
        query_id="q-1", query_digest="00", at="2026-12-01T00:00:00Z", node="us-node", hit=True,
        record_count=1, records_digest="11", node_signature=node_signature,
    )  # fmt: skip
    return EntryRow(
        idx=4, at=event.at, kind="disclosed", query_id="q-1", agency="", country="us", investigator="",
        order_id="", decision="", node="us-node", data=b"", event=event,
    )  # fmt: skip


def test_a_disclosure_shows_the_use_restrictions_its_node_statement_carries() -> None:
    statement = pb.NodeStatement(
        node_id="us-node",
        use_restrictions=[
            pb.UseRestriction(
                code="NO_ONWARD_TRANSFER", description="Not to be passed on.", legal_basis="art. 9"
            )
        ],
    )
    envelope = pb.Envelope(payload_type=PAYLOAD_NODE_STATEMENT, payload=statement.SerializeToString())
    view = entry_view(_row(envelope.SerializeToString().hex()), {})
    assert [(r.code, r.description, r.legal_basis) for r in view.restrictions] == [
        ("NO_ONWARD_TRANSFER", "Not to be passed on.", "art. 9")
    ]
    assert all(name != "node signature" for name, _ in view.fields)


def test_no_restrictions_are_made_up_from_what_is_not_a_node_statement() -> None:
    other = pb.Envelope(payload_type=PAYLOAD_NODE_DECISION, payload=b"\x0a\x01x").SerializeToString().hex()
    for logged in ("not hex", "00ff" * 8, other):
        assert entry_view(_row(logged), {}).restrictions == []


def test_the_summaries_thread_rebuilds_the_overview_and_report_for_the_verified_size(tmp_path: Path) -> None:
    from comity.sdk.console.mirror import Mirror, VerifiedHead
    from comity.sdk.console.summaries import Summaries

    mirror = Mirror(tmp_path / "mirror.db")
    summaries = Summaries(mirror, origin="log.example", offence_class=lambda code: "X", interval=0.05)
    assert summaries.overview()["size"] == 0 and summaries.report()[0] == 0  # built in the request
    mirror.stage(0, [b"not a comity event"])
    mirror.promote(VerifiedHead(1, b"r" * 32, b""))
    summaries.start()
    try:
        assert summaries.running
        for _ in range(400):
            if summaries.report()[0] == 1 and summaries.overview()["size"] == 1:
                break
            threading.Event().wait(0.05)
        assert summaries.report()[0] == 1 and summaries.overview()["total"] == 1
    finally:
        summaries.stop()
    assert not summaries.running
