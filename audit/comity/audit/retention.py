"""Retention: after the legal period, the selectors behind the log's commitments are deleted.

Query logs serve lawfulness monitoring only and are kept for a legal period (two years under
Prüm) unless an audit is pending. Entries cannot leave a Merkle log without breaking every
later proof, and they hold no selector anyway: each decision carries salted commitments, and
the openings (salt, type, value) are stored beside the log. Deleting the openings of entries
older than the period leaves the tree, every checkpoint, cosignature and receipt verifiable
and the selectors unrecoverable: a commitment without its salt reveals nothing.

Entries of orders under a legal hold (an audit or proceedings pending) keep their openings.
The gateway's justification signatures of decisions before the cutoff are deleted in the same
pass, held or not (``justification_signatures.py``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from comity.audit.errors import InvalidEntry
from comity.audit.events import DecisionEvent, decode_event
from comity.audit.justification_signatures import SignatureTables, prune_signatures
from comity.audit.store import LogStore

__all__ = ["DEFAULT_RETENTION", "RetentionReport", "prune_openings"]

#: Prüm Decision 2008/615 art. 30: logs kept two years.
DEFAULT_RETENTION = timedelta(days=730)


@dataclass(frozen=True)
class RetentionReport:
    """What a pruning pass found and did."""

    cutoff: datetime
    entries_before_cutoff: int
    decisions_pruned: int
    decisions_held: int
    openings_deleted: int
    signatures_deleted: int = 0
    """Justification signatures (the gateway's reuse check) of decisions before the cutoff."""


def prune_openings(
    store: LogStore, *, cutoff: datetime, hold_orders: Collection[str] = (), dry_run: bool = False
) -> RetentionReport:
    """Delete the openings of decisions logged before ``cutoff``, except those of held orders.

    Entries are in time order (up to a batch's few milliseconds), so the scan stops at the
    first entry at or after ``cutoff``: anything after it is kept. An entry that is not a
    Comity event stops the pass with :class:`InvalidEntry` before anything is deleted.
    """
    scanned, held = 0, 0
    doomed: list[int] = []
    for index, _leaf, data in store.iter_entries(store.tree_size()):
        try:
            event = decode_event(data)
        except InvalidEntry as exc:
            raise InvalidEntry(f"entry {index}: {exc.message}; run 'comity audit verify' first") from None
        if datetime.fromisoformat(event.at.replace("Z", "+00:00")) >= cutoff:
            break
        scanned += 1
        if isinstance(event, DecisionEvent) and event.commitments:
            if event.order_id in hold_orders:
                held += 1
            else:
                doomed.append(index)
    deleted = 0 if dry_run else store.delete_openings(doomed)
    signatures = prune_signatures(
        store.writer, SignatureTables(store.tables.prefix), cutoff=cutoff, dry_run=dry_run
    )
    return RetentionReport(cutoff, scanned, len(doomed), held, deleted, signatures)
