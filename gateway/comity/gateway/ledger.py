"""The gateway's use of the transparency log: what it records, and the proofs it hands out.

The ledger turns pipeline moments (a decision, a disclosure, a failure) into typed audit
events, appends them with group commit, and remembers which checkpoint each witnessing node
accepted last, so every forwarded query carries a consistency proof from there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType

from comity.audit import events
from comity.audit.errors import AuditError
from comity.audit.log import AppendResult, CosignatureRule, TransparencyLog
from comity.audit.pending import PendingMarker
from comity.audit.quorum import SizedKeys
from comity.audit.refusal_counts import RefusalCount
from comity.audit.shared_state import (
    RELEASING_REASONS,
    EmergencyRow,
    FactsGuard,
    QuotaKey,
    QuotaRelease,
    Review,
)
from comity.audit.store import PendingEntry
from comity.core.errors import ComityError
from comity.core.keys import SigningKey, VerifyingKey
from comity.gateway.decision_facts import clear_facts, justification_of, target_of
from comity.policy.facts import QueryFacts
from comity.v1 import comity_pb2 as pb

__all__ = ["Ledger", "Logged"]

_log = logging.getLogger("comity.gateway.ledger")

# Consistency proofs a query forwarded again carries beyond the one from the size the node
# reported: from the newest checkpoints published after it, which the witness may have reached.
_MORE_PROOFS = 4
# Consistency proofs a query's first forward carries beyond the one from the size this process
# believes the node's witness is at: from the newest checkpoints below its own (of any gateway
# process over the database), where concurrent queries may have left the witness.
_RECENT_PROOFS = 8


@dataclass(frozen=True)
class Logged:
    """An appended entry: its bytes, where it is, and the signed checkpoint that covers it."""

    entry: bytes
    index: int
    tree_size: int
    inclusion: tuple[bytes, ...]
    checkpoint: bytes
    bundle_digest: str = ""

    def entry_proof(self) -> pb.EntryProof:
        """The entry with its inclusion proof, as the wire carries it."""
        return pb.EntryProof(
            entry=self.entry,
            inclusion=pb.InclusionProof(
                leaf_index=self.index, tree_size=self.tree_size, hashes=self.inclusion
            ),
        )


def _quota_key(decision: bytes) -> QuotaKey | None:
    """The quota counters an allowed decision entry added one to (None for anything else)."""
    try:
        event = events.decode_event(decision)
    except AuditError:
        return None
    if not isinstance(event, events.DecisionEvent) or event.decision != "ALLOW":
        return None
    return QuotaKey(event.at[:10], event.investigator, event.agency)


def _category(value: int) -> str:
    try:
        return pb.DataCategory.Name(value)
    except ValueError:
        return f"CATEGORY_{value}"


def _logged(entry: bytes, result: AppendResult, bundle_digest: str = "") -> Logged:
    return Logged(entry, result.index, result.tree_size, result.inclusion, result.checkpoint, bundle_digest)


class Ledger:
    """Appends the gateway's audit events and serves the log's proofs."""

    def __init__(self, log: TransparencyLog) -> None:
        self._log = log
        self._witnessed: dict[str, int] = {}
        # Markers this process opened and has not closed (query digest → monotonic time), so
        # recovery leaves queries still in flight here alone.
        self._in_flight: dict[bytes, float] = {}

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        origin: str,
        key: SigningKey,
        witnesses: Mapping[str, VerifyingKey] = MappingProxyType({}),
        batch_interval: float,
        log_keys: SizedKeys | None = None,
        cosigners: CosignatureRule | None = None,
    ) -> Ledger:
        """Open the log at ``url`` (creating it) with group commit every ``batch_interval`` seconds.

        ``log_keys`` and ``cosigners`` are the federation's log key history and witness key
        histories (see :meth:`TransparencyLog.open`); without them, ``key`` and ``witnesses``.
        """
        log = await TransparencyLog.open(
            url,
            origin=origin,
            key=key,
            batch_interval=batch_interval,
            witnesses=witnesses,
            log_keys=log_keys,
            cosigners=cosigners,
        )
        return cls(log)

    @property
    def verifier_key(self) -> str:
        """The log's verifier key in the C2SP text form (what legal officers verify with)."""
        return self._log.verifier.to_text()

    @property
    def log(self) -> TransparencyLog:
        """The underlying transparency log."""
        return self._log

    # ------------------------------------------------------------------ recording

    async def record_decision(
        self,
        pending: PendingEntry,
        *,
        query_digest: bytes,
        bundle_digest: str,
        guard: FactsGuard | None = None,
    ) -> Logged:
        """Append a decision entry made by :meth:`decision_entry`.

        ``guard``: the shared facts (quota counts, emergency track) it was decided on, checked
        and counted in the entry's own transaction (``comity.audit.shared_state``); the entry
        logged is then the decision made on the facts the database holds, so whether it allows
        is read from the entry appended, not from ``pending``.
        """
        if guard is not None:
            pending = replace(pending, guard=guard)
        result = await self._log.append(pending.data, pending=pending)
        if b'"decision":"ALLOW"' in result.entry:
            self._in_flight[query_digest] = time.monotonic()
        return _logged(result.entry, result, bundle_digest)

    def decision_entry(
        self,
        *,
        query: pb.Query,
        query_digest: bytes,
        order: pb.LegalOrder,
        selectors: Sequence[tuple[str, str]],
        allowed: bool,
        rule_codes: Sequence[str],
        bundle_digest: str,
        at: datetime,
        agreement: str = "",
        facts: QueryFacts | None = None,
        checks: Sequence[tuple[str, str]] = (),
        authority: str = "",
        order_digest: bytes = b"",
        sealed_rule_codes: Sequence[str] | None = None,
        refusal: RefusalCount | None = None,
    ) -> PendingEntry:
        """The decision on a query, allow or deny, with salted commitments to its selectors.

        ``facts`` are the policy's facts (logged in clear or as commitments, see
        :mod:`comity.gateway.decision_facts`); ``checks`` the ``(check code, rule)`` pairs of
        refusals found before policy; ``rule_codes`` the policy's rule ids as the requester sees
        them, and ``sealed_rule_codes`` the real ones when they differ (logged as a commitment
        only: the entry travels in the requester's receipt); ``refusal`` what the refusals among
        ``checks`` count against the requester's limits. Appended by :meth:`record_decision`.
        """
        entry, openings = events.decision_event(
            query_id=query.query_id,
            query_digest=query_digest,
            investigator=query.investigator,
            agency=query.requesting_agency,
            target_node=query.target_node,
            order_id=order.order_id,
            offence_code=order.offence_code,
            categories=list(facts.categories)
            if facts is not None
            else [_category(c) for c in query.categories],
            selectors=selectors,
            allowed=allowed,
            rule_codes=list(rule_codes),
            bundle_digest=bundle_digest,
            agreement=agreement,
            at=at,
            case_reference=query.case_reference,
            authority=authority,
            order_digest=order_digest,
            justification=justification_of(facts) if facts is not None else None,
            target=target_of(facts) if facts is not None else None,
            checks=checks,
            facts=clear_facts(facts) if facts is not None else None,
            sealed_rules=sealed_rule_codes,
        )
        # An allowed decision opens a pending marker in its own transaction: if what follows
        # is never logged, recovery closes it with a failure entry.
        marker = (
            PendingMarker(query_digest, query.query_id, query.target_node, int(at.timestamp()))
            if allowed
            else None
        )
        day = at.astimezone(UTC).date().isoformat()
        return PendingEntry(
            entry,
            tuple(openings),
            marker,
            counts=QuotaKey(day, query.investigator, query.requesting_agency),
            refusal=refusal,
        )

    async def record_disclosure(
        self,
        *,
        query_id: str,
        query_digest: bytes,
        node: str,
        hit: bool,
        record_count: int,
        records_digest: bytes,
        node_statement: pb.Envelope,
        at: datetime,
        cosignature: str = "",
        cosigned_size: int = 0,
    ) -> Logged:
        """What a node released (a digest and a count, never the records) and its signature.

        A witness ``cosignature`` of the checkpoint of ``cosigned_size`` that came with the
        answer is stored as by :meth:`remember_cosignature`, in the same batch as the entry.
        """
        entry = events.disclosed_event(
            query_id=query_id,
            query_digest=query_digest,
            node=node,
            hit=hit,
            record_count=record_count,
            records_digest=records_digest,
            node_signature=node_statement.SerializeToString(),
            at=at,
        )
        if not cosignature:
            return await self.record(entry, closes=query_digest)
        # Queued together, both land in one batch: one transaction and one fsync for the two.
        _, logged = await asyncio.gather(
            self.remember_cosignature(node, cosignature, cosigned_size),
            self.record(entry, closes=query_digest),
        )
        return logged

    async def record_failure(
        self,
        query: pb.Query,
        query_digest: bytes,
        *,
        node: str,
        reason: str,
        at: datetime,
        decision: bytes = b"",
    ) -> Logged:
        """An allowed query that could not be completed (node down, node refusal).

        ``decision`` is the query's decision entry: when the failure is one of
        :data:`~comity.audit.shared_state.RELEASING_REASONS`, the entry gives that decision's
        quota count back, in its own transaction, if the query was not ended before (the entry
        logged, returned here, says whether it did).
        """
        return await self.record_failure_event(
            query_id=query.query_id,
            query_digest=query_digest,
            node=node,
            reason=reason,
            at=at,
            decision=decision,
        )

    async def record_failure_event(
        self, *, query_id: str, query_digest: bytes, node: str, reason: str, at: datetime, decision: bytes
    ) -> Logged:
        """:meth:`record_failure` by the query's id and digest (recovery has no query)."""
        unreleased = events.failed_event(
            query_id=query_id, query_digest=query_digest, node=node, reason=reason, at=at
        )
        key = _quota_key(decision) if reason in RELEASING_REASONS else None
        if key is None:
            return await self.record(unreleased, closes=query_digest)
        entry = events.failed_event(
            query_id=query_id, query_digest=query_digest, node=node, reason=reason, at=at, quota_released=True
        )
        pending = PendingEntry(
            entry, closes=query_digest, release=QuotaRelease(key, query_digest, unreleased)
        )
        result = await self._log.append(entry, pending=pending)
        self._in_flight.pop(query_digest, None)
        return _logged(result.entry, result)

    async def record_refusal(
        self,
        *,
        query_id: str,
        query_digest: bytes,
        investigator: str,
        agency: str,
        reason: str,
        at: datetime,
        checks: Sequence[tuple[str, str]] = (),
        refusal: RefusalCount | None = None,
        target_node: str = "",
    ) -> Logged:
        """An authenticated request refused before any policy decision (bad signature, replay, stale, ...).

        ``reason`` is the status name sent; ``checks`` the ``(check code, rule)`` of each refusal.
        ``refusal``: what it counts against its requester's limits, in its own transaction; raises
        :class:`~comity.audit.errors.EntryWithdrawn` (not logged) when the requester is at one.
        """
        entry = events.refused_event(
            query_id=query_id,
            query_digest=query_digest,
            investigator=investigator,
            agency=agency,
            reason_code=reason,
            at=at,
            checks=checks,
            target_node=target_node,
        )
        return _logged(entry, await self._log.append(entry, pending=PendingEntry(entry, refusal=refusal)))

    async def record(
        self,
        entry: bytes,
        *,
        closes: bytes = b"",
        first_use: EmergencyRow | None = None,
        review: Review | None = None,
    ) -> Logged:
        """Append an event encoded elsewhere (emergency track, node decisions, recovery).

        ``closes``: the query digest whose pending marker this entry ends, in its transaction.
        ``first_use`` / ``review``: the emergency track's change this entry makes; raises
        :class:`~comity.audit.errors.EntryWithdrawn` when the shared record makes it moot.
        """
        pending = PendingEntry(bytes(entry), closes=closes, first_use=first_use, review=review)
        logged = _logged(entry, await self._log.append(entry, pending=pending))
        if closes:
            self._in_flight.pop(closes, None)
        return logged

    def in_flight(self, query_digest: bytes, *, within: float) -> bool:
        """Whether this process opened ``query_digest``'s marker less than ``within`` seconds ago."""
        opened = self._in_flight.get(query_digest)
        return opened is not None and time.monotonic() - opened < within

    # ------------------------------------------------------------------ witnesses

    def witnessed_size(self, node: str) -> int | None:
        """The tree size ``node``'s witness is at as far as this process knows (accepted, or last sent)."""
        return self._witnessed.get(node)

    def set_witnessed_size(self, node: str, size: int | None) -> None:
        """Record what a node reported as its witness state (None: ask it again next time)."""
        if size is None:
            self._witnessed.pop(node, None)
        else:
            self._witnessed[node] = size

    def note_witnessed(self, node: str, size: int) -> None:
        """``node``'s witness is at ``size`` or past it (its witnessing round cosigned it, or it said so)."""
        self._witnessed[node] = max(size, self._witnessed.get(node, 0))

    async def forward_proofs(
        self, node: str, decision: Logged
    ) -> tuple[pb.EntryProof, bytes, pb.ConsistencyProof | None, int]:
        """What a forwarded query carries for ``node``'s witness.

        The decision entry is proved against the newest checkpoint this log signed (so the
        node only ever moves forward), with a consistency proof from the last checkpoint the
        node accepted or was last sent. Returns (entry proof, checkpoint note, consistency proof or None,
        checkpoint size).
        """
        size, note = self._log.newest_signed()
        if self._witnessed.get(node, 0) > size:  # another process appended to the database since
            note = await self._log.latest_checkpoint()
            size = self._log.open_own(note).checkpoint.size
        hashes = (
            decision.inclusion
            if size == decision.tree_size
            else tuple(await self._log.inclusion_proof(decision.index, size))
        )
        entry = pb.EntryProof(
            entry=decision.entry,
            inclusion=pb.InclusionProof(leaf_index=decision.index, tree_size=size, hashes=hashes),
        )
        last = self._witnessed.get(node, 0)
        consistency = None
        if 0 < last < size:
            proof = await self._log.consistency_proof(last, size)
            consistency = pb.ConsistencyProof(first_size=last, second_size=size, hashes=proof)
        # Concurrent queries reach the node mostly in the order they were forwarded: the next one
        # is proved from this checkpoint. A node that is elsewhere says so (WITNESS_AT_SIZE).
        self._witnessed[node] = max(size, last)
        return entry, note, consistency, size

    def proofs_from_recent(self, size: int, *, besides: int | None = None) -> list[pb.ConsistencyProof]:
        """Consistency proofs to the checkpoint of ``size`` from the newest checkpoints below it.

        Built only from the tree hashes this process holds in memory (no SQL): what a first forward
        carries so that a witness moved by other queries (this process's or another's) to one of
        those checkpoints takes the query at once, instead of answering ``WITNESS_AT_SIZE``.
        ``besides``: a first size already proved.
        """
        store = self._log.store
        proofs: list[pb.ConsistencyProof] = []
        for first in reversed(store.recent_sizes()):
            if len(proofs) == _RECENT_PROOFS:
                break
            if not 0 < first < size or first == besides:
                continue
            hashes = store.recent_consistency_proof(first, size)
            if hashes is not None:
                proofs.append(pb.ConsistencyProof(first_size=first, second_size=size, hashes=hashes))
        return proofs

    async def forward_proofs_fresh(
        self, node: str, decision: Logged
    ) -> tuple[pb.EntryProof, bytes, list[pb.ConsistencyProof], int]:
        """:meth:`forward_proofs` for a query forwarded again after the node said where its witness is.

        Against the newest checkpoint in the database (which may be another process's), with a
        consistency proof from the size the node reported and from each of the checkpoints
        published after it, newest first: the witness may have moved on to one of them since.
        Read in one snapshot. Returns (entry proof, checkpoint note, consistency proofs, size).
        """
        since = self._witnessed.get(node, 0)
        head = await self._log.head_proofs(decision.index, since, limit=_MORE_PROOFS)
        entry = pb.EntryProof(
            entry=decision.entry,
            inclusion=pb.InclusionProof(
                leaf_index=decision.index, tree_size=head.tree_size, hashes=head.inclusion
            ),
        )
        proofs = [
            pb.ConsistencyProof(first_size=first, second_size=head.tree_size, hashes=hashes)
            for first, hashes in head.consistency
        ]
        self._witnessed[node] = max(head.tree_size, since)
        return entry, head.note, proofs, head.tree_size

    async def remember_cosignature(self, node: str, line: str, tree_size: int) -> None:
        """Store a node's cosignature of the checkpoint of ``tree_size`` (checked against its witness key)."""
        try:
            await self._log.add_cosignature(tree_size, line)
        except ComityError as exc:  # a bad cosignature must not fail the query it came with
            _log.warning("cosignature from %s refused: %s", node, exc.message)
            return
        self._witnessed[node] = max(tree_size, self._witnessed.get(node, 0))

    # ------------------------------------------------------------------ reading

    async def receipt(self, query_id: str, query_digest: bytes, logged: Sequence[Logged]) -> pb.Receipt:
        """Every entry proved against the newest checkpoint among them."""
        newest = max(logged, key=lambda e: e.tree_size)
        entries = []
        for e in logged:
            hashes = (
                e.inclusion
                if e.tree_size == newest.tree_size
                else tuple(await self._log.inclusion_proof(e.index, newest.tree_size))
            )
            entries.append(
                pb.EntryProof(
                    entry=e.entry,
                    inclusion=pb.InclusionProof(
                        leaf_index=e.index, tree_size=newest.tree_size, hashes=hashes
                    ),
                )
            )
        return pb.Receipt(
            query_id=query_id,
            query_digest=query_digest,
            entries=entries,
            checkpoint=pb.Checkpoint(signed_note=newest.checkpoint),
        )

    async def latest_checkpoint(self) -> tuple[bytes, list[str]]:
        """The newest signed checkpoint and the cosignatures it has."""
        note = await self._log.latest_checkpoint()
        size = self._log.open_own(note).checkpoint.size
        return note, await self._log.cosignatures(size)

    async def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``start`` to ``end`` (exclusive)."""
        return await self._log.entries(start, end)

    async def tree_size(self) -> int:
        """The size of the newest checkpoint."""
        return await self._log.tree_size()

    async def inclusion_proof(self, index: int, tree_size: int) -> tuple[int, list[bytes]]:
        """Proof that entry ``index`` is in the tree of ``tree_size``."""
        return index, await self._log.inclusion_proof(index, tree_size)

    async def inclusion_proof_by_leaf_hash(self, leaf_hash: bytes, tree_size: int) -> tuple[int, list[bytes]]:
        """Find the entry with ``leaf_hash`` and prove it is in the tree of ``tree_size``."""
        return await self._log.inclusion_proof_by_leaf_hash(leaf_hash, tree_size)

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """Proof that the tree of size ``first`` is a prefix of the tree of size ``second``."""
        return await self._log.consistency_proof(first, second)

    async def close(self) -> None:
        """Commit what is pending and close the log."""
        await self._log.close()
