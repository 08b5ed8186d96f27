"""The transparency log as the gateway uses it: asyncio appends with adaptive group commit.

``await log.append(entry)`` returns once the entry is durable and covered by a signed
checkpoint. The database work runs on one writer thread, off the event loop, one batch at a
time: one transaction, one fsync and one new checkpoint per batch. An append that finds the
writer idle is committed at once; appends that arrive while a commit runs are committed
together as soon as it ends, after waiting up to one batch interval for more company only while
they are few. Witness cosignatures are stored the same way, in the next batch to commit. If
the store fails, every append of that batch raises :class:`AuditUnavailable` and the log is
unchanged (fail closed: the gateway must then refuse the request).

The checkpoints this log signs, and the subtree hashes near the head, stay in memory after
their commit, so the proofs and checkpoints a query needs a moment later are not read back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from comity.audit.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    open_checkpoint,
    sign_checkpoint,
    with_cosignatures,
)
from comity.audit.commitments import CommitmentOpening
from comity.audit.cosignature import CosignatureVerifier, cosignature_timestamp
from comity.audit.errors import AuditError, AuditUnavailable, EntryNotFound, EntryWithdrawn, UnverifiedNote
from comity.audit.note import Ed25519Signer, Ed25519Verifier, Note, NoteSignature
from comity.audit.pending import PendingMarker
from comity.audit.quorum import SizedKeys, open_log_checkpoint
from comity.audit.rfc6962 import hash_leaf
from comity.audit.shared_state import EmergencyRow
from comity.audit.store import Batch, HeadProofs, LogStore, PendingEntry, StoredCosignature
from comity.core.errors import ConfigError
from comity.core.keys import SigningKey, VerifyingKey
from comity.core.storage_failure import describe_failure
from comity.core.telemetry import record_audit_batch, set_log_size

__all__ = ["AppendResult", "CosignatureRule", "TransparencyLog", "witness_verifiers"]


_log = logging.getLogger("comity.audit.log")


@dataclass(frozen=True, slots=True)
class AppendResult:
    """A durable entry: where it is, and the proof that the signed ``checkpoint`` covers it."""

    index: int
    tree_size: int
    leaf_hash: bytes
    inclusion: tuple[bytes, ...]
    #: The log-signed checkpoint note of ``tree_size`` (no cosignatures yet).
    checkpoint: bytes
    #: The entry appended (a decision may have been made again on moved shared facts).
    entry: bytes = b""


@dataclass(slots=True)
class _Waiting:
    entry: PendingEntry
    future: asyncio.Future[AppendResult]
    arrived: float = field(default=0.0)


@dataclass(slots=True)
class _Cosigning:
    cosignature: StoredCosignature
    future: asyncio.Future[None]
    arrived: float = field(default=0.0)


#: Checkpoints this log signed and committed, kept so that witnessing and receipts of recent
#: queries read none back: a query needs the few newest.
_KEPT_CHECKPOINTS = 64

#: A batch that arrived while the last commit ran waits (up to the batch interval) for company
#: only while smaller than this. Measured per entry, a commit of 1 entry costs 0.69 ms on SQLite
#: (1.34 on PostgreSQL), of 16 entries 0.057 (0.125), of 64 entries 0.031 (0.068): the fixed cost
#: (transaction, fsync, signed checkpoint) is shared out by about 16, and more company would save
#: under a factor of two while every entry already pending keeps waiting for it.
_COMPANY_WORTH_WAITING_FOR = 16


#: How far a cosignature's own timestamp may be from the gateway's clock when it is stored: a
#: witness cosigns what it is sent at once, so an older claim is a back-dated line (say, under a
#: key retired since, dated inside its period).
COSIGNATURE_FRESHNESS = 300.0


class CosignatureRule(Protocol):
    """Which witness made a cosignature, under the key it held at the line's own time (``Quorum``)."""

    def verify(self, text: str, signature: NoteSignature, *, now: datetime | None = None) -> str:
        """The witness id (by a key held at the line's time, and at ``now`` too when given);
        raises :class:`UnverifiedNote`."""
        ...


def witness_verifiers(
    witnesses: Mapping[str, Ed25519PublicKey | VerifyingKey] | Sequence[CosignatureVerifier],
) -> list[CosignatureVerifier]:
    """Cosignature verifiers from ``{witness name: public key}`` (e.g. the federation's node keys)."""
    if isinstance(witnesses, Mapping):
        return [
            CosignatureVerifier(name, key.public_key if isinstance(key, VerifyingKey) else key)
            for name, key in witnesses.items()
        ]
    return list(witnesses)


class TransparencyLog:
    """An append-only, signed, witnessed log on SQLite or PostgreSQL. Create with :meth:`open`."""

    def __init__(
        self,
        store: LogStore,
        signer: Ed25519Signer,
        *,
        batch_interval: float,
        max_batch: int,
        witnesses: Sequence[CosignatureVerifier],
        log_keys: SizedKeys | None = None,
        cosigners: CosignatureRule | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._signer = signer
        # One reference, replaced whole when the federation file changes (use_trust).
        self._trust: tuple[SizedKeys | None, CosignatureRule | None] = (log_keys, cosigners)
        self._clock = clock
        self._interval = batch_interval
        self._max_batch = max_batch
        self._witnesses = {(w.name, w.key_id): w for w in witnesses}
        self._pending: list[_Waiting] = []
        self._cosigning: list[_Cosigning] = []
        self._signed: OrderedDict[int, bytes] = OrderedDict()
        self._newest: tuple[int, bytes] | None = None
        self._wake = asyncio.Event()
        self._enough = asyncio.Event()
        self._enough_count = min(_COMPANY_WORTH_WAITING_FOR, max_batch)
        self._writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        origin: str,
        key: Ed25519PrivateKey | SigningKey,
        batch_interval: float = 0.005,
        max_batch: int = 512,
        witnesses: Mapping[str, Ed25519PublicKey | VerifyingKey] | Sequence[CosignatureVerifier] = (),
        table_prefix: str = "audit_",
        log_keys: SizedKeys | None = None,
        cosigners: CosignatureRule | None = None,
    ) -> TransparencyLog:
        """Open (or create) the log at ``url`` whose checkpoints ``key`` signs as ``origin``.

        Publishes the empty tree's checkpoint on a new log. ``log_keys`` is the log key's history
        by tree size (the federation file's): the checkpoints already in the log must verify
        under it, and ``key`` must be the one it names for the next checkpoint, so the log key
        rotates by tree size. ``cosigners`` decides which witness made a cosignature under the
        key it held at the line's time (the federation's key histories); without it, only
        ``witnesses`` count. Raises :class:`ConfigError` if the log's checkpoints were signed by
        another key or origin, or ``key`` may not sign the next one, :class:`AuditUnavailable`
        if the database cannot be reached.
        """
        private = key.private_key if isinstance(key, SigningKey) else key
        signer = Ed25519Signer(origin, private)
        store = await asyncio.to_thread(LogStore.open, url, table_prefix=table_prefix)
        log = cls(
            store,
            signer,
            batch_interval=batch_interval,
            max_batch=max_batch,
            witnesses=witness_verifiers(witnesses),
            log_keys=log_keys,
            cosigners=cosigners,
        )
        try:
            await log._in_writer(store.append_batch, [], log._sign)
            latest = await log.latest_checkpoint()
            size = log.open_own(latest).checkpoint.size
            log._keep(size, latest)
            log._check_key_signs(size + 1)
        except AuditError as exc:
            store.close()
            which = "this log key" if log_keys is None else "a log key the federation file lists for its size"
            raise ConfigError(
                f"the audit log at the configured URL is not signed by {which} as {origin!r}: {exc.message}",
                field="audit.url",
                hint="use the log's own origin and key, or a new database",
            ) from None
        except ConfigError:
            store.close()
            raise
        return log

    def use_trust(self, log_keys: SizedKeys | None, cosigners: CosignatureRule | None) -> None:
        """Verify checkpoints and new cosignatures under a newly trusted federation file's log key
        history and witness rule, from now on (one step: no check sees half of the change).

        The key this log signs with stays the one it was opened with: when the new history
        gives it no range for the next checkpoint, appends fail closed until a restart with
        the key the history names.
        """
        self._trust = (log_keys, cosigners)

    def _check_key_signs(self, size: int) -> None:
        log_keys = self._trust[0]
        if log_keys is None or self._holds(log_keys, size):
            return
        raise ConfigError(
            f"the configured log key is not the one the federation file lists for the log's next "
            f"checkpoint (tree size {size})",
            field="keys.log_key",
            hint="use the log key whose [[gateway.log.keys]] range holds the log's size "
            "(after a rotation: the new key, listed with from_size at most the log's size)",
        )

    def _holds(self, log_keys: SizedKeys, size: int) -> bool:
        raw = self._signer.verifier.public_key.public_bytes_raw()
        return any(k.public_key.public_bytes_raw() == raw for k in log_keys.for_size(size))

    def open_own(self, note: bytes) -> SignedCheckpoint:
        """Verify a checkpoint of this log under the log key its size calls for (raises AuditError)."""
        log_keys = self._trust[0]
        if log_keys is None:
            return open_checkpoint(note, self._signer.verifier)
        return open_log_checkpoint(note, self._signer.name, log_keys)

    @property
    def verifier(self) -> Ed25519Verifier:
        """The log's checkpoint verifier key (give ``verifier.to_text()`` to nodes and auditors)."""
        return self._signer.verifier

    def _sign(self, tree_size: int, root_hash: bytes) -> bytes:
        log_keys = self._trust[0]
        if log_keys is not None and not self._holds(log_keys, tree_size):
            # Fail closed: a checkpoint outside this key's range would be refused by every witness.
            raise AuditUnavailable(
                f"the log key may not sign a checkpoint of tree size {tree_size} (its range in the "
                "federation file ends before): restart the gateway with the log's new key"
            )
        return sign_checkpoint(Checkpoint(self._signer.name, tree_size, root_hash), self._signer)

    async def _in_writer(self, fn: Callable[..., Batch], *args: Any) -> Batch:
        # One dedicated thread: batches are written strictly one after another.
        return await asyncio.get_running_loop().run_in_executor(self._writer_thread, fn, *args)

    def _keep(self, tree_size: int, note: bytes) -> None:
        """Remember a checkpoint verified as this log's (opened at start, or signed here and committed)."""
        self._signed[tree_size] = note
        self._signed.move_to_end(tree_size)
        while len(self._signed) > _KEPT_CHECKPOINTS:
            self._signed.popitem(last=False)
        if self._newest is None or tree_size >= self._newest[0]:
            self._newest = (tree_size, note)

    # ------------------------------------------------------------------ appending

    async def append(
        self,
        entry: bytes,
        *,
        openings: Sequence[CommitmentOpening] = (),
        opens: PendingMarker | None = None,
        closes: bytes = b"",
        pending: PendingEntry | None = None,
    ) -> AppendResult:
        """Append one entry (with its selector openings, stored beside the log) and wait until durable.

        ``opens`` is a pending marker to open, ``closes`` the query digest of one to close, in the
        entry's own transaction (``comity.audit.pending``). ``pending``, given instead of the
        others, is an entry with its shared-state effects (``comity.audit.shared_state``).

        Raises :class:`AuditUnavailable` if the log cannot be written, :class:`EntryWithdrawn` if
        the shared state made the entry moot; the entry is then not in the log. A caller
        cancelled after its batch started may still find the entry logged.
        """
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        loop = asyncio.get_running_loop()
        if pending is None:
            pending = PendingEntry(bytes(entry), tuple(openings), opens, closes)
        waiting = _Waiting(pending, loop.create_future(), loop.time())
        self._pending.append(waiting)
        self._start_writer()
        return await waiting.future

    def _start_writer(self) -> None:
        self._wake.set()
        if len(self._pending) + len(self._cosigning) >= self._enough_count:
            self._enough.set()
        if self._task is None:
            self._task = asyncio.create_task(self._write_batches(), name="audit-log-writer")

    async def _write_batches(self) -> None:
        loop = asyncio.get_running_loop()
        idle = True
        while True:
            await self._wake.wait()
            if not self._pending and not self._cosigning:
                if self._closed:
                    return
                self._wake.clear()
                idle = True
                continue
            # After an idle spell nothing is being committed that this arrival could share a
            # commit with: waiting for company would only add latency, so it commits at once.
            # What arrived while the last commit ran (load) commits next; if that is still a
            # small batch, it waits a little for more to share one fsync and one signature,
            # never past the interval from its first arrival.
            if idle:
                # One turn of the event loop first: appends its caller queued in the same turn
                # (entries gathered together, such as a disclosure with the node's decision and
                # its cosignature) share this commit instead of waiting for the next one.
                await asyncio.sleep(0)
            queued = len(self._pending) + len(self._cosigning)
            if not idle and queued < self._enough_count and not self._closed:
                first = min([w.arrived for w in self._pending[:1]] + [c.arrived for c in self._cosigning[:1]])
                delay = first + self._interval - loop.time()
                if delay > 0:
                    await self._wait_for_company(delay)
            idle = False
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            cosigning, self._cosigning = self._cosigning, []
            if len(self._pending) < self._enough_count:
                self._enough.clear()
            await self._commit(batch, cosigning)

    async def _wait_for_company(self, delay: float) -> None:
        """Wait up to ``delay`` seconds, or until the batch is big enough or the log closes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._enough.wait(), delay)

    async def _commit(self, batch: list[_Waiting], cosigning: list[_Cosigning]) -> None:
        started = time.perf_counter()
        try:
            result = await self._in_writer(
                self.store.append_batch,
                [w.entry for w in batch],
                self._sign,
                [c.cosignature for c in cosigning],
            )
        except Exception as exc:
            if isinstance(exc, AuditUnavailable):
                error = exc
            else:  # a bug or an OS error: the details stay in the server's log
                _log.error("the audit log failed to append a batch", exc_info=exc)
                why = describe_failure(exc)
                error = AuditUnavailable(f"the audit log cannot append entries: {why}", why=why)
            futures: list[asyncio.Future[Any]] = [w.future for w in batch] + [c.future for c in cosigning]
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        for cosigned in cosigning:
            if not cosigned.future.done():
                cosigned.future.set_result(None)
        if not batch:
            return
        # Signed by this log in the transaction just committed: safe to serve without reading it back.
        self._keep(result.tree_size, result.checkpoint)
        record_audit_batch(len(batch), time.perf_counter() - started)
        set_log_size(result.tree_size)
        for waiting, appended in zip(batch, result.entries, strict=True):
            if waiting.future.done():
                continue
            if isinstance(appended, str):
                waiting.future.set_exception(EntryWithdrawn(appended))
                continue
            waiting.future.set_result(
                AppendResult(
                    appended.index,
                    result.tree_size,
                    appended.leaf_hash,
                    appended.inclusion,
                    result.checkpoint,
                    appended.data,
                )
            )

    async def close(self) -> None:
        """Commit what is pending, stop the writer and release the database."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._enough.set()
        if self._task is not None:
            await self._task
        self._writer_thread.shutdown(wait=True)
        await asyncio.to_thread(self.store.close)

    # ------------------------------------------------------------------ reading

    async def head_proofs(self, index: int, since: int, *, limit: int = 4) -> HeadProofs:
        """:meth:`LogStore.head_proofs`: the newest checkpoint in the database, entry ``index``
        proved in it, and consistency proofs to it from ``since`` and the checkpoints after it."""
        return await asyncio.to_thread(functools.partial(self.store.head_proofs, index, since, limit=limit))

    async def latest_checkpoint(self) -> bytes:
        """The latest log-signed checkpoint note in the database (without cosignatures)."""
        return await asyncio.to_thread(self.store.checkpoint)

    def newest_signed(self) -> tuple[int, bytes]:
        """``(tree size, note)`` of the newest checkpoint this log signed or opened with; no database read.

        The same as :meth:`latest_checkpoint` unless another process appends to the same database.
        """
        if self._newest is None:
            raise AuditUnavailable("the audit log is not open")
        return self._newest

    async def checkpoint(self, tree_size: int) -> bytes:
        """The log-signed checkpoint note of ``tree_size``."""
        note = self._signed.get(tree_size)
        if note is not None:
            return note
        return await asyncio.to_thread(self.store.checkpoint, tree_size)

    async def cosigned_checkpoint(self, tree_size: int | None = None) -> bytes:
        """The checkpoint note of ``tree_size`` (default latest) with every stored cosignature line."""
        note = await asyncio.to_thread(self.store.checkpoint, tree_size)
        size = Checkpoint.from_text(Note.parse(note).text).size
        lines = await self.cosignatures(size)
        return with_cosignatures(note, [NoteSignature.parse_line(line.rstrip("\n")) for line in lines])

    async def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)``."""
        return await asyncio.to_thread(self.store.entries, start, end)

    async def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """The inclusion proof of entry ``index`` in the tree of ``tree_size``."""
        proof = self.store.recent_inclusion_proof(index, tree_size)
        if proof is not None:
            return proof
        return await asyncio.to_thread(self.store.inclusion_proof, index, tree_size)

    async def inclusion_proof_by_leaf_hash(self, leaf_hash: bytes, tree_size: int) -> tuple[int, list[bytes]]:
        """``(index, proof)`` for the first entry with ``leaf_hash``, in the tree of ``tree_size``."""
        index = await asyncio.to_thread(self.store.leaf_index, leaf_hash)
        return index, await self.inclusion_proof(index, tree_size)

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The proof that the tree of ``second`` entries extends the tree of ``first``."""
        proof = self.store.recent_consistency_proof(first, second)
        if proof is not None:
            return proof
        return await asyncio.to_thread(self.store.consistency_proof, first, second)

    async def tree_size(self) -> int:
        """The size of the latest checkpoint."""
        return await asyncio.to_thread(self.store.tree_size)

    async def emergency_use(self, order_digest: bytes) -> EmergencyRow | None:
        """The shared record of one emergency order, if it was used."""
        return await asyncio.to_thread(self.store.emergency_use, order_digest)

    async def emergency_uses(self) -> list[EmergencyRow]:
        """Every emergency order on the shared record, oldest first."""
        return await asyncio.to_thread(self.store.emergency_uses)

    async def pending_markers(self) -> list[PendingMarker]:
        """The open pending markers (allowed decisions whose outcome is not logged yet)."""
        return await asyncio.to_thread(self.store.pending_markers)

    async def contains(self, entry: bytes) -> bool:
        """Whether the log holds ``entry`` (looked up by its leaf hash)."""
        try:
            await asyncio.to_thread(self.store.leaf_index, hash_leaf(entry))
        except EntryNotFound:
            return False
        return True

    async def contained(self, entries: Sequence[bytes]) -> list[bool]:
        """For each of ``entries``, whether the log holds it (one look-up for all of them)."""
        hashes = [hash_leaf(e) for e in entries]
        present = await asyncio.to_thread(self.store.present, hashes) if hashes else set()
        return [h in present for h in hashes]

    async def openings(self, index: int) -> list[CommitmentOpening]:
        """The selector openings of entry ``index`` (legal officers' tools only)."""
        return await asyncio.to_thread(self.store.openings, index)

    # ------------------------------------------------------------------ witnessing

    async def add_cosignature(self, tree_size: int, cosignature: str | NoteSignature) -> None:
        """Verify a witness's cosignature line on the checkpoint of ``tree_size`` and store it.

        The line is stored with the next batch of appends (one transaction with them) and this
        returns once it is durable. Raises :class:`UnverifiedNote` for an unknown witness or a
        signature that does not verify, :class:`AuditUnavailable` if it cannot be stored.
        """
        line = (
            NoteSignature.parse_line(cosignature.rstrip("\n"))
            if isinstance(cosignature, str)
            else cosignature
        )
        kept = self._signed.get(tree_size)
        if kept is not None:  # signed here; the text needs no second check
            text = Note.parse(kept).text
        else:
            text = self.open_own(await self.checkpoint(tree_size)).text
        self._verify_cosignature(text, line)
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        loop = asyncio.get_running_loop()
        cosigning = _Cosigning(
            StoredCosignature(tree_size, line.name, line.line()), loop.create_future(), loop.time()
        )
        self._cosigning.append(cosigning)
        self._start_writer()
        await cosigning.future

    def _verify_cosignature(self, text: str, line: NoteSignature) -> None:
        cosigners = self._trust[1]
        if cosigners is None:
            witness = self._witnesses.get((line.name, line.key_id))
            if witness is None:
                raise UnverifiedNote(f"{line.name!r} is not a witness this log knows (or its key changed)")
            witness.verify(text, line)
            return
        # A key retired (or revoked) since the line's own time no longer adds a cosignature.
        cosigners.verify(text, line, now=datetime.fromtimestamp(self._clock(), UTC))
        made = cosignature_timestamp(line)
        if abs(made - self._clock()) > COSIGNATURE_FRESHNESS:
            raise UnverifiedNote(
                f"the cosignature by {line.name!r} claims POSIX time {made}, more than "
                f"{COSIGNATURE_FRESHNESS:g} s from now: a witness cosigns when asked"
            )

    async def cosignatures(self, tree_size: int) -> list[str]:
        """The stored cosignature lines (each ending in a newline) on the checkpoint of ``tree_size``."""
        return await asyncio.to_thread(self.store.cosignatures, tree_size)
