"""Offline verification of a whole log database, for legal officers.

:func:`verify_log` trusts nothing in the database: it recomputes every leaf hash and the tree
from the stored entries, checks the stored subtree hashes that proofs are served from, every
checkpoint's signature and root, every cosignature, and that the log still extends the last
checkpoint this officer verified (kept in a local state file), and that each stored selector
opening opens the commitment its decision entry logged. The first problem raises
:class:`LogVerificationError` naming the entry or checkpoint.

With a :class:`~comity.audit.quorum.Quorum`, cosignatures verify under each witness's key
history, the newest checkpoint with a witness quorum is found, and the entries after it are
"quorum pending": reported with their number and age, and a failure once the oldest has waited
longer than the quorum's ``max_delay``. The state file then also remembers the quorum
checkpoint's cosignatures, and a later run fails if any of them has disappeared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from comity.audit.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint, with_cosignatures
from comity.audit.cosignature import CosignatureVerifier
from comity.audit.errors import AuditError, LogVerificationError
from comity.audit.events import DecisionEvent, decode_event
from comity.audit.note import Ed25519Verifier, NoteSignature
from comity.audit.quorum import Quorum, note_cosignatures
from comity.audit.rfc6962 import hash_leaf
from comity.audit.store import LogStore
from comity.audit.tree import CompactRange, NodeId
from comity.audit.verifystate import VerifierState

__all__ = ["LogReport", "verify_log"]

_NODE_CHUNK = 2000


@dataclass(slots=True)
class LogReport:
    """What a successful verification covered."""

    tree_size: int = 0
    root_hash: bytes = b""
    checkpoints: int = 0
    cosignatures: int = 0
    openings: int = 0
    previous_size: int | None = None
    witnesses: dict[str, int] = field(default_factory=dict)
    #: With a quorum: the newest checkpoint with one, and who cosigned it (witness ids).
    quorum_size: int | None = None
    quorum_witnesses: tuple[str, ...] = ()
    #: Entries after the quorum checkpoint ("quorum pending"), and when the oldest was logged.
    pending_entries: int = 0
    pending_since: datetime | None = None
    pinned_size: int | None = None

    def pending_age(self, now: datetime) -> float:
        """Seconds the oldest quorum-pending entry has waited (0 with none)."""
        return 0.0 if self.pending_since is None else max(0.0, (now - self.pending_since).total_seconds())


def verify_log(
    url: str,
    *,
    verifier_key: Ed25519Verifier | str,
    witnesses: Sequence[CosignatureVerifier | str] = (),
    state: Path | None = None,
    table_prefix: str = "audit_",
    quorum: Quorum | None = None,
    now: datetime | None = None,
) -> LogReport:
    """Verify the log at ``url`` end to end; raise :class:`LogVerificationError` on the first problem.

    ``witnesses``: cosignatures by these keys must verify, and a cosignature by any other key is
    an error; with none given, cosignatures are not checked. ``quorum`` (which then replaces
    ``witnesses``): cosignatures verify under the witnesses' key histories, and the entries after
    the newest quorum checkpoint may not have waited longer than ``quorum.max_delay`` before
    ``now``. ``state``: what this verifier accepted before (:class:`VerifierState`); the log must
    extend it and still show the quorum's cosignatures, and on success it is updated.
    """
    log_key = Ed25519Verifier.from_text(verifier_key) if isinstance(verifier_key, str) else verifier_key
    cosigners = [CosignatureVerifier.from_text(w) if isinstance(w, str) else w for w in witnesses]
    store = LogStore.open(url, table_prefix=table_prefix, create=False)
    try:
        return _Verifier(store, log_key, cosigners, quorum, now or datetime.now(UTC)).run(state)
    except LogVerificationError:
        raise
    except AuditError as exc:
        raise LogVerificationError(f"the log cannot be read: {exc.message}") from None
    finally:
        store.close()


class _Verifier:
    def __init__(
        self,
        store: LogStore,
        log_key: Ed25519Verifier,
        witnesses: list[CosignatureVerifier],
        quorum: Quorum | None,
        now: datetime,
    ) -> None:
        self.store = store
        self.log_key = log_key
        self.witnesses = {(w.name, w.key_id): w for w in witnesses}
        self.quorum = quorum
        self.now = now
        self.check_cosignatures = bool(witnesses) or quorum is not None
        self.report = LogReport()
        self.latest_note = b""
        self.quorum_note = b""
        self.awaiting_first_pending = quorum is not None

    def _open(self, note: bytes) -> SignedCheckpoint:
        if self.quorum is not None:
            return self.quorum.open(note, self.log_key)
        return open_checkpoint(note, self.log_key)

    def run(self, state: Path | None) -> LogReport:
        saved = VerifierState.load(state)
        remembered = self._remembered(state, saved)
        stored, published = self.store.head()
        if stored > published:
            raise LogVerificationError(
                f"entries {published}..{stored - 1} are not covered by any signed checkpoint",
                entry_index=published,
                hint="entries were added without the log's key, or the latest checkpoints were deleted",
            )
        # Verify up to this head; entries appended while we read are left for the next run.
        sizes = [s for s in self.store.checkpoint_sizes() if s <= published]
        if not sizes:
            raise LogVerificationError("the log has no checkpoint at all", tree_size=0)
        tree = self._replay_entries(sizes, remembered)
        self._check_quorum_kept(saved)
        if tree.size < sizes[-1]:
            raise LogVerificationError(
                f"checkpoint {sizes[-1]} covers {sizes[-1]} entries, but only {tree.size} are stored",
                entry_index=tree.size,
                hint="entries were deleted from the end of the log",
            )
        for old in remembered:
            if old.size > tree.size:
                raise LogVerificationError(
                    f"the log was rolled back: it has {tree.size} entries, "
                    f"but size {old.size} was verified before (or cosigned by your node)",
                    tree_size=old.size,
                )
        self._check_openings(tree.size)
        self.report.tree_size, self.report.root_hash = tree.size, tree.root()
        self._check_pending()
        if state is not None:
            saved.with_notes(checkpoint=self.latest_note, quorum=self.quorum_note or None).save(state)
        return self.report

    def _remembered(self, state: Path | None, saved: VerifierState) -> list[Checkpoint]:
        remembered = []
        notes = (("checkpoint", saved.checkpoint), ("quorum", saved.quorum), ("pinned", saved.pinned))
        for what, note in notes:
            if note is None:
                continue
            try:
                checkpoint = self._open(note).checkpoint
            except AuditError as exc:
                raise LogVerificationError(
                    f"the remembered {what} checkpoint in {state} is not this log's: {exc.message}"
                ) from None
            if what == "checkpoint":
                self.report.previous_size = checkpoint.size
            elif what == "pinned":
                self.report.pinned_size = checkpoint.size
            remembered.append(checkpoint)
        return remembered

    def _check_quorum_kept(self, saved: VerifierState) -> None:
        """Every cosignature the quorum checkpoint carried when verified before must still be there."""
        if saved.quorum is None:
            return
        try:
            before = self._open(saved.quorum)
        except AuditError as exc:
            raise LogVerificationError(
                f"the remembered quorum checkpoint is not this log's: {exc.message}"
            ) from None
        size = before.checkpoint.size
        try:
            now = {NoteSignature.parse_line(line.rstrip("\n")).name for line in self.store.cosignatures(size)}
        except AuditError as exc:
            raise LogVerificationError(f"checkpoint {size}: {exc.message}", tree_size=size) from None
        gone = sorted({c.name for c in note_cosignatures(saved.quorum, self.log_key.name)} - now)
        if gone:
            raise LogVerificationError(
                f"checkpoint {size} carried a witness quorum when you verified it before, but the "
                f"cosignature(s) of {', '.join(gone)} have disappeared from the log",
                tree_size=size,
                hint="cosignatures are deleted to hide a rewritten history: report it to the other parties",
            )

    def _check_pending(self) -> None:
        """Entries after the newest quorum checkpoint may wait for witnesses only as long as policy allows."""
        if self.quorum is None:
            return
        r = self.report
        r.pending_entries = r.tree_size - (r.quorum_size or 0)
        if r.pending_entries and r.pending_age(self.now) > self.quorum.max_delay.total_seconds():
            since = r.pending_since.isoformat() if r.pending_since else "?"
            where = "no checkpoint" if r.quorum_size is None else f"nothing after checkpoint {r.quorum_size}"
            raise LogVerificationError(
                f"{r.pending_entries} entries are not covered by a witness quorum: {where} carries one, "
                f"and the oldest entry waiting was logged at {since}, longer ago than the bound of "
                f"{self.quorum.max_delay.total_seconds():g} s",
                tree_size=r.quorum_size,
                entry_index=r.quorum_size or 0,
                hint="a witness is down, or the witnesses were shown different histories (a split view)",
            )

    def _replay_entries(self, sizes: list[int], remembered: list[Checkpoint]) -> CompactRange:
        tree = CompactRange()
        pending = list(reversed(sizes))  # checkpoint sizes still to reach, smallest last
        created: dict[NodeId, bytes] = {}
        self._at_size(tree, pending, remembered)
        for index, leaf_hash, data in self.store.iter_entries(sizes[-1]):
            if index != tree.size:
                raise LogVerificationError(
                    f"entry {tree.size} is missing (the next stored entry is {index})", entry_index=tree.size
                )
            if hash_leaf(data) != leaf_hash:
                raise LogVerificationError(
                    f"entry {index} was altered: its bytes do not match its stored leaf hash",
                    entry_index=index,
                )
            if self.awaiting_first_pending:
                self._note_pending(data)
            created.update(tree.append(leaf_hash))
            if len(created) >= _NODE_CHUNK:
                self._check_nodes(created)
            self._at_size(tree, pending, remembered)
        self._check_nodes(created)
        return tree

    def _at_size(self, tree: CompactRange, pending: list[int], remembered: list[Checkpoint]) -> None:
        for old in remembered:
            if old.size == tree.size and old.root_hash != tree.root():
                raise LogVerificationError(
                    f"the history was rewritten: the tree of size {tree.size} "
                    "differs from the one verified before (or cosigned by your node)",
                    tree_size=tree.size,
                )
        while pending and pending[-1] == tree.size:
            self._check_checkpoint(pending.pop(), tree.root())

    def _check_checkpoint(self, size: int, root: bytes) -> None:
        note = self.store.checkpoint(size)
        try:
            signed = self._open(note)
        except AuditError as exc:
            raise LogVerificationError(f"checkpoint {size}: {exc.message}", tree_size=size) from None
        if signed.checkpoint.size != size or signed.checkpoint.root_hash != root:
            raise LogVerificationError(
                f"checkpoint {size} does not match the entries: it claims size {signed.checkpoint.size} "
                f"with root {signed.checkpoint.root_hash.hex()}, the entries give {root.hex()}",
                tree_size=size,
            )
        self.report.checkpoints += 1
        self.latest_note = note
        if self.quorum is not None:
            self._check_quorum(size, signed.text, note)
        elif self.check_cosignatures:
            self._check_cosignatures(size, signed.text)

    def _note_pending(self, data: bytes) -> None:
        """The first entry after the newest quorum checkpoint so far: when it was logged."""
        self.awaiting_first_pending = False
        try:
            at = decode_event(data).at
            self.report.pending_since = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except (AuditError, ValueError):
            self.report.pending_since = None

    def _check_quorum(self, size: int, text: str, note: bytes) -> None:
        assert self.quorum is not None
        lines = self.store.cosignatures(size)
        try:
            cosigners = self.quorum.cosigners(text, lines)
        except AuditError as exc:
            raise LogVerificationError(f"checkpoint {size}: {exc.message}", tree_size=size) from None
        self.report.cosignatures += len(lines)
        for name in cosigners.values():
            self.report.witnesses[name] = self.report.witnesses.get(name, 0) + 1
        if self.quorum.is_quorum(cosigners):
            self.report.quorum_size = size
            self.report.quorum_witnesses = tuple(sorted(cosigners))
            self.report.pending_since = None
            self.awaiting_first_pending = True
            signatures = [NoteSignature.parse_line(line.rstrip("\n")) for line in lines]
            self.quorum_note = with_cosignatures(note, signatures)

    def _check_cosignatures(self, size: int, text: str) -> None:
        for line in self.store.cosignatures(size):
            try:
                signature = NoteSignature.parse_line(line.rstrip("\n"))
                witness = self.witnesses.get((signature.name, signature.key_id))
                if witness is None:
                    raise LogVerificationError(
                        f"checkpoint {size}: cosignature by unknown witness {signature.name!r}"
                    )
                witness.verify(text, signature)
            except LogVerificationError as exc:
                exc.tree_size = size
                raise
            except AuditError as exc:
                raise LogVerificationError(f"checkpoint {size}: {exc.message}", tree_size=size) from None
            self.report.cosignatures += 1
            self.report.witnesses[signature.name] = self.report.witnesses.get(signature.name, 0) + 1

    def _check_openings(self, end: int) -> None:
        """Each stored opening must open the commitment its entry logged at the same position."""
        entry_idx = -1
        commitments: tuple[str, ...] = ()
        for index, position, commitment, opening in self.store.iter_openings(end):
            if index != entry_idx:
                entry_idx = index
                commitments = self._commitments(index)
            if position >= len(commitments) or bytes.fromhex(commitments[position]) != commitment:
                raise LogVerificationError(
                    f"entry {index}: stored opening {position} belongs to no commitment of the entry",
                    entry_index=index,
                )
            try:
                opening.verify(commitment)
            except AuditError:
                raise LogVerificationError(
                    f"entry {index}: stored opening {position} does not open the logged commitment",
                    entry_index=index,
                ) from None
            self.report.openings += 1

    def _commitments(self, index: int) -> tuple[str, ...]:
        try:
            event = decode_event(self.store.entries(index, index + 1)[0])
        except AuditError:
            event = None
        if not isinstance(event, DecisionEvent):
            raise LogVerificationError(
                f"entry {index} has stored openings but is not a decision", entry_index=index
            )
        return event.commitments

    def _check_nodes(self, created: dict[NodeId, bytes]) -> None:
        ids = list(created)
        try:
            stored = self.store.node_hashes(ids)
        except AuditError:
            raise LogVerificationError(
                "subtree hashes the log serves proofs from are missing", entry_index=ids[0][1] << ids[0][0]
            ) from None
        for (level, index), value in zip(ids, stored, strict=True):
            if created[(level, index)] != value:
                first = index << level
                raise LogVerificationError(
                    f"the stored hash of entries {first}..{first + (1 << level) - 1} was altered "
                    "(proofs served from it would be wrong)",
                    entry_index=first,
                )
        created.clear()
