"""What one entry shows: a disclosure's use restrictions, read from the node statement it logged."""

from __future__ import annotations

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
