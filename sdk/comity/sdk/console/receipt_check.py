"""The receipt check page's verdict: the checks ``comity audit verify-receipt`` runs, put in words.

A receipt is read with :func:`~comity.sdk.receipts.parse_receipt` and checked with
:func:`~comity.audit.receipt.verify_query_receipt` under the federation file's trust, exactly
as the command line does; nothing here checks anything of its own. The verdict is one of
three: valid (every check passed and the witness quorum cosigned the checkpoint), quorum pending
(every check passed but the quorum has not cosigned yet: the command line refuses it too), or
invalid (what is wrong, the check's code and what to do). For each entry the receipt proves,
the verdict also says whether this console's verified mirror holds the same bytes at that index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from comity.audit.errors import AuditError
from comity.audit.events import decode_event
from comity.audit.receipt import ReceiptTrust, quorum_pending, verify_query_receipt
from comity.audit.receipt_refusals import ReceiptInvalid
from comity.core.errors import ComityError
from comity.sdk.console.mirror import WITHHELD, Mirror
from comity.sdk.console.words import KIND_WORDS
from comity.sdk.receipts import describe_receipt, parse_receipt
from comity.v1 import comity_pb2 as pb

__all__ = ["MAX_RECEIPT_BYTES", "ProvedEntry", "ReceiptVerdict", "check_receipt"]

#: A receipt is a few kilobytes; anything far larger is not one.
MAX_RECEIPT_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class ProvedEntry:
    """One entry a receipt proves: where it is in the log, what it is, and what the mirror holds there."""

    index: int
    kind: str
    #: ``same``, ``different``, ``withheld`` (only its leaf hash is held: not this country's to
    #: read, as the gateway judged it) or ``not yet`` (the mirror has not verified that far).
    mirror: str


@dataclass(frozen=True)
class ReceiptVerdict:
    """What the check found; ``verdict`` is ``valid``, ``pending`` or ``invalid``."""

    verdict: str
    headline: str
    #: What the receipt proves (valid or pending), or what is wrong (invalid), in sentences.
    lines: list[str] = field(default_factory=list)
    hint: str | None = None
    #: The failed check's code (invalid only).
    check: str | None = None
    query_id: str = ""
    tree_size: int | None = None
    witnesses: tuple[str, ...] = ()
    entries: list[ProvedEntry] = field(default_factory=list)


def check_receipt(text: str | bytes, trust: ReceiptTrust, *, origin: str, mirror: Mirror) -> ReceiptVerdict:
    """Read and verify a receipt the SDK exported; never raises for what the text holds."""
    if len(text) > MAX_RECEIPT_BYTES:
        return ReceiptVerdict(
            "invalid",
            "This is not a Comity receipt.",
            [f"It is {len(text):,} bytes long; a receipt is a few kilobytes."],
            hint="Upload the JSON file the SDK's export_receipt wrote.",
        )
    try:
        receipt = parse_receipt(text, source="the text given")
    except ComityError as exc:
        return ReceiptVerdict(
            "invalid",
            "This is not a Comity receipt.",
            [exc.message],
            hint="Upload or paste the JSON file the SDK's export_receipt wrote, unchanged.",
        )
    try:
        verified = verify_query_receipt(receipt, trust, require_quorum=False)
    except ReceiptInvalid as exc:
        return ReceiptVerdict(
            "invalid",
            "This receipt does NOT verify: do not rely on it.",
            [exc.message],
            hint=exc.hint,
            check=exc.check,
            query_id=receipt.query_id,
        )
    except ComityError as exc:
        return ReceiptVerdict(
            "invalid",
            "This receipt does NOT verify: do not rely on it.",
            [exc.message],
            hint=exc.hint,
            query_id=receipt.query_id,
        )
    lines = describe_receipt(verified)
    what = (
        "1 log entry, included"
        if verified.entry_count == 1
        else f"{verified.entry_count} log entries, each included"
    )
    lines.append(f"{what} in checkpoint {verified.tree_size} of {origin}.")
    if verified.quorum_pending:
        verdict = "pending"
        headline = "Not yet valid: the witness quorum has not cosigned this receipt's checkpoint."
        lines.append(quorum_pending(verified.quorum).message)
    else:
        verdict, headline = "valid", "This receipt is valid."
        lines.append(
            f"Witness quorum reached: the checkpoint is cosigned by {', '.join(verified.witnesses)}."
        )
    return ReceiptVerdict(
        verdict,
        headline,
        lines,
        query_id=verified.query_id,
        tree_size=verified.tree_size,
        witnesses=verified.witnesses,
        entries=_proved(receipt, mirror),
    )


def _proved(receipt: pb.Receipt, mirror: Mirror) -> list[ProvedEntry]:
    found = []
    for e in receipt.entries:
        try:
            kind = decode_event(e.entry).kind
        except AuditError:
            kind = "undecodable"
        row = mirror.entry(e.inclusion.leaf_index)
        if row is not None and row.kind == WITHHELD:
            # The gateway served only its hash here: a receipt of this country's query shows that
            # an entry its officers may read was withheld from them.
            held = "withheld"
        else:
            held = "not yet" if row is None else ("same" if row.data == e.entry else "different")
        found.append(ProvedEntry(e.inclusion.leaf_index, KIND_WORDS.get(kind, kind), held))
    return found
