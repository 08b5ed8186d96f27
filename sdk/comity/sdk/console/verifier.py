"""Incremental verification of the console's mirror against quorum-cosigned checkpoints.

A **sync round** (:meth:`MirrorVerifier.sync`):

1. takes the source's newest quorum checkpoint and checks it under the federation's keys: the
   log's signature (the key its size calls for) and every cosignature under the witnesses' key
   histories, then that they meet the quorum (:class:`~comity.audit.quorum.Quorum`, the same
   rules as ``comity audit verify``);
2. refuses a checkpoint smaller than the verified head, or of the same size with another root,
   and checks the source's consistency proof from the verified head to it;
3. fetches the entries after the head in batches, staging them in the mirror and extending the
   tree's right border from the verified one;
4. promotes them only when the recomputed root is the checkpoint's; otherwise it discards them
   and locates the first entry that does not match, with inclusion proofs.

A **mirror check** (:meth:`MirrorVerifier.check_mirror`) recomputes the whole verified tree from
the mirror's own bytes and derived columns and compares it with the remembered checkpoint, whose
signatures it checks again: a mirror edited on disk (entries, columns, or the remembered
checkpoint) fails it.

**Withheld entries.** The gateway serves an entry the officer's country may not read as its
leaf hash only; the mirror keeps that hash and the tree is recomputed from it like from any
entry, so a withheld leaf hash that is not the log's fails the round (or the mirror check) as
an altered entry would. A mirror made for one country (``Mirror.reader``) also withholds
itself what a source shows in full but that country may not read (a database copy holds every
entry), judged by :mod:`comity.audit.readers`. :attr:`MirrorVerifier.readable` counts, per set
of reader countries, what the mirror holds, with a fingerprint the other parties' officers
compare with theirs: a gateway that withholds one officer an entry their country may read
gives the two officers different fingerprints.

**Locating a bad entry** never trusts hashes the mirror stores. With the leaf hashes of the
entries in hand, it asks the source for the inclusion proof of the first leaf not yet known
good, verifies it against the quorum checkpoint's root, and compares each subtree hash of that
authentic proof with the same subtree computed from the entries; the leftmost that differs
holds the bad entry, and the search continues inside it (at most one proof per tree level).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from comity.audit.checkpoint import SignedCheckpoint
from comity.audit.errors import AuditError, AuditUnavailable, InvalidProof, LogVerificationError
from comity.audit.note import Ed25519Verifier
from comity.audit.proof import inclusion_proof, inclusion_ranges, verify_consistency, verify_inclusion
from comity.audit.quorum import Quorum, note_cosignatures
from comity.audit.readers import ReadableSets, ReaderIndex, Readership
from comity.audit.rfc6962 import EMPTY_ROOT, hash_leaf
from comity.audit.tree import CompactRange, MemoryTree
from comity.sdk.console.mirror import Mirror, VerifiedHead, Withheld, columns, withheld_columns
from comity.sdk.console.sources import LogSource, OfferedCheckpoint

__all__ = ["BATCH", "MirrorVerifier", "RoundResult"]

BATCH = 1000


@dataclass(frozen=True, slots=True)
class RoundResult:
    """What a successful sync round did."""

    size: int
    added: int
    witnesses: tuple[str, ...]


class MirrorVerifier:
    """Verifies what ``source`` serves into ``mirror``; raises :class:`LogVerificationError`."""

    def __init__(
        self,
        mirror: Mirror,
        source: LogSource,
        *,
        log_key: Ed25519Verifier,
        quorum: Quorum,
        progress: Callable[[int, int], None] | None = None,
        readership: Readership | None = None,
    ) -> None:
        if mirror.reader is not None and readership is None:
            raise ValueError("a mirror for one country's officers needs the readership to judge entries")
        self.mirror = mirror
        self.source = source
        self.log_key = log_key
        self.quorum = quorum
        self.readership = readership
        self._progress = progress or (lambda done, total: None)
        self._border: CompactRange | None = None
        self._index: ReaderIndex | None = None
        #: What the verified mirror holds, per set of reader countries (after the mirror check).
        self.readable = ReadableSets()

    # ------------------------------------------------------------------ checkpoints

    def _open(
        self, full: bytes, what: str, *, pending_ok: bool = False
    ) -> tuple[SignedCheckpoint, tuple[str, ...]]:
        """A checkpoint note with its cosignature lines, verified under the federation's keys.

        Returns the checkpoint and the witness ids of its quorum. Without a quorum it raises
        :class:`AuditUnavailable` when ``pending_ok`` (a source's newest checkpoint, which the
        witnesses may not have cosigned yet), else :class:`LogVerificationError`.
        """
        try:
            signed = self.quorum.open(full, self.log_key)
            lines = [c.line() for c in note_cosignatures(full, self.log_key.name)]
            ids = self.quorum.cosigners(signed.text, lines)
        except AuditError as exc:
            raise LogVerificationError(f"{what} does not verify: {exc.message}") from None
        if not self.quorum.is_quorum(ids):
            missing = ", ".join(f"{n} more from {g}" for g, n in self.quorum.missing(ids).items())
            message = f"{what} (size {signed.checkpoint.size}) carries no witness quorum: {missing} needed"
            if pending_ok:
                # Not yet a failure: the mirror waits (the page says so) until witnesses cosign.
                raise AuditUnavailable(message, hint="the witnesses have not cosigned it yet") from None
            raise LogVerificationError(message, tree_size=signed.checkpoint.size)
        return signed, tuple(sorted(ids))

    # ------------------------------------------------------------------ a sync round

    def sync(self) -> RoundResult:
        """Fetch and verify everything up to the source's newest quorum checkpoint."""
        head = self.mirror.head()
        border = self._verified_border(head)
        offered = _full_note(self.source.quorum_checkpoint())
        signed, witnesses = self._open(
            offered, f"the newest quorum checkpoint from {self.source.description}", pending_ok=True
        )
        size, root = signed.checkpoint.size, signed.checkpoint.root_hash
        if size < head.size:
            raise LogVerificationError(
                f"the log shrank: the mirror verified {head.size} entries, the newest quorum checkpoint "
                f"has {size}",
                tree_size=size,
                hint="a log never shrinks: report it to the other parties",
            )
        if size == 0:
            # The newest quorum checkpoint is the empty tree (a new log, or witnesses that have not
            # cosigned a later one yet): nothing to fetch, and an empty tree has one root only.
            if root != EMPTY_ROOT:
                raise LogVerificationError(
                    "a quorum checkpoint of size 0 has a root other than the empty tree's", tree_size=0
                )
            return RoundResult(0, 0, witnesses)
        if size == head.size:
            if root != head.root:
                raise LogVerificationError(
                    f"two different trees of size {size}, both signed and cosigned: the log forked",
                    tree_size=size,
                )
            return RoundResult(size, 0, witnesses)
        if head.size:
            try:
                verify_consistency(head.size, size, self.source.consistency(head.size, size), head.root, root)
            except InvalidProof as exc:
                raise LogVerificationError(
                    f"checkpoint {size} does not extend the verified checkpoint {head.size}: {exc.message}",
                    tree_size=size,
                ) from None
        try:
            tree = self._fetch(border, size)
        except BaseException:
            self._index = None  # it judged entries that were not kept: rebuilt from the mirror
            raise
        if tree.root() != root:
            self._index = None
            self.mirror.discard_staged()
            bad = self._locate_fetched(head.size, size, root)
            raise LogVerificationError(
                f"entry {bad} from {self.source.description} does not match quorum checkpoint {size}: "
                "its inclusion proof does not verify",
                entry_index=bad,
                tree_size=size,
            )
        self.mirror.promote(VerifiedHead(size, root, offered))
        self._border = tree
        return RoundResult(size, size - head.size, witnesses)

    def _fetch(self, border: CompactRange, size: int) -> CompactRange:
        tree = border.copy()
        self.mirror.discard_staged()
        batch: list[bytes | Withheld] = []
        for data in self.source.entries(tree.size, size):
            batch.append(data)
            if len(batch) == BATCH:
                self._stage(tree, batch, size)
                batch = []
        self._stage(tree, batch, size)
        if tree.size != size:
            raise LogVerificationError(
                f"the source stopped at entry {tree.size} of {size}", entry_index=tree.size
            )
        return tree

    def _stage(self, tree: CompactRange, batch: Sequence[bytes | Withheld], size: int) -> None:
        kept = [self._keep(tree.size + i, item) for i, item in enumerate(batch)]
        self.mirror.stage(tree.size, kept)
        for item in kept:
            tree.append(_leaf(item))
        self._progress(tree.size, size)

    def _keep(self, idx: int, item: bytes | Withheld) -> bytes | Withheld:
        """What the mirror keeps of entry ``idx``: its bytes, or only its leaf hash."""
        if isinstance(item, Withheld):
            self.readable.add_withheld()
            return item
        if self._index is None:
            return item
        readers = self._index.readers(item)
        if self.mirror.reader is not None and self.mirror.reader not in readers:
            # Shown in full by the source, but not this country's to read: keep only the hash.
            self.readable.add_withheld()
            return Withheld(hash_leaf(item))
        self.readable.add(idx, hash_leaf(item), readers)
        return item

    def _verified_border(self, head: VerifiedHead) -> CompactRange:
        """The right border of the verified tree (recomputed from the mirror once per process)."""
        stale = self.readership is not None and self._index is None
        if self._border is None or self._border.size != head.size or stale:
            self._border = self.check_mirror()
        return self._border

    # ------------------------------------------------------------------ the mirror check

    def check_mirror(self) -> CompactRange:
        """Recompute the verified tree from the mirror and check it against the remembered checkpoint."""
        head = self.mirror.head()
        if head.size == 0:
            return CompactRange()
        signed, _ = self._open(head.note, "the mirror's remembered checkpoint")
        if (signed.checkpoint.size, signed.checkpoint.root_hash) != (head.size, head.root):
            raise LogVerificationError(
                "the mirror's verified size or root was edited: it is not the remembered checkpoint's",
                tree_size=head.size,
            )
        leaves: list[bytes] = []
        tree = CompactRange()
        edited: int | None = None
        self._index = None
        index = ReaderIndex(self.readership) if self.readership is not None else None
        readable = ReadableSets()
        for idx, stored, data, rules in self.mirror.iter_stored(head.size):
            if idx != len(leaves):
                raise LogVerificationError(
                    f"entry {len(leaves)} is missing from the mirror", entry_index=len(leaves)
                )
            if edited is None and (stored, rules) != _columns(data, self.mirror.country_of):
                edited = idx
            leaves.append(_leaf(data))
            tree.append(leaves[-1])
            if isinstance(data, Withheld):
                readable.add_withheld()
            elif index is not None:
                readable.add(idx, leaves[-1], index.readers(data))
        if len(leaves) != head.size:
            raise LogVerificationError(
                f"entry {len(leaves)} is missing from the mirror", entry_index=len(leaves)
            )
        if tree.root() != head.root:
            bad = self.locate(leaves, head.size, head.root)
            raise LogVerificationError(
                f"entry {bad} in the mirror was altered: it does not match quorum checkpoint {head.size} "
                "(located with the source's inclusion proofs)",
                entry_index=bad,
                tree_size=head.size,
                hint="delete the mirror file and let the console sync it again, then find out who edited it",
            )
        if edited is not None:
            raise LogVerificationError(
                f"the mirror's index of entry {edited} was edited: it does not match the entry",
                entry_index=edited,
                hint="delete the mirror file and let the console sync it again",
            )
        self._index, self.readable = index, readable
        return tree

    # ------------------------------------------------------------------ locating a bad entry

    def _locate_fetched(self, start: int, size: int, root: bytes) -> int:
        leaves = [_leaf(d) for _, _, d, _ in self.mirror.iter_stored(start)]
        leaves += [_leaf(d) for d in self.source.entries(start, size)]
        return self.locate(leaves, size, root)

    def locate(self, leaves: Sequence[bytes], size: int, root: bytes) -> int:
        """The first index whose leaf is not the log's, by inclusion proofs verified against ``root``."""
        ours = MemoryTree(leaves)
        low = 0
        for _ in range(size.bit_length() + 2):
            theirs = self.source.inclusion(low, size)
            try:
                verify_inclusion(leaves[low], low, size, theirs, root)
            except InvalidProof:
                return low
            mine = inclusion_proof(low, size, ours)
            differing = [
                begin
                for (begin, _end), a, b in zip(inclusion_ranges(low, size), theirs, mine, strict=True)
                if a != b and begin > low
            ]
            if not differing:
                break
            low = min(differing)
        raise LogVerificationError(
            f"the entries do not give checkpoint {size}'s root, but no entry could be located",
            tree_size=size,
        )


def _full_note(offered: OfferedCheckpoint) -> bytes:
    note = offered.note if offered.note.endswith(b"\n") else offered.note + b"\n"
    return note + "".join(c if c.endswith("\n") else c + "\n" for c in offered.cosignatures).encode()


def _leaf(item: bytes | Withheld) -> bytes:
    return item.leaf_hash if isinstance(item, Withheld) else hash_leaf(item)


def _columns(item: bytes | Withheld, country_of: Mapping[str, str]) -> tuple[dict[str, str], set[str]]:
    return (withheld_columns(), set()) if isinstance(item, Withheld) else columns(item, country_of)
