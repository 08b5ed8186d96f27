"""A witness: what each data node runs so the gateway cannot show two countries two histories.

The witness remembers every checkpoint it accepted (size and root) in a small SQLite file,
written in one durable transaction per acceptance. A new checkpoint must carry the log's
signature and, if it is larger than the last one accepted, a consistency proof from that one.
The witness then cosigns it (C2SP tlog-cosignature) and remembers it. The same size with
another root is a split view, a smaller size with another root than remembered is a rollback
or a fork: both raise :class:`InconsistentLog`, and the node must refuse the query.

A checkpoint smaller than the newest one accepted (two queries racing) is accepted when its
root is the one remembered for that size, or when a proof shows the newest extends it; it is
not cosigned then, because a v1 cosignature claims the *largest* tree the witness has seen.

:meth:`Witness.add_checkpoint` is the C2SP tlog-witness add-checkpoint call, which does not
depend on queries: the caller names the size it believes the witness is at, with the proof from
there; a witness at another size refuses with its own size (:class:`ConsistencyRequired`), so
the caller retries with the right proof. The latest cosigned checkpoint is kept with its
cosignature line (:meth:`Witness.latest_cosigned`), so other witnesses and verifiers can compare
it with what the log shows them. A checkpoint refused as inconsistent is kept as evidence.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from comity.audit.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint, with_cosignatures
from comity.audit.cosignature import CosignatureSigner, CosignatureVerifier
from comity.audit.errors import (
    AuditError,
    ConsistencyRequired,
    InconsistentLog,
    InvalidProof,
    WitnessError,
)
from comity.audit.note import Ed25519Verifier, Note, NoteSignature
from comity.audit.proof import verify_consistency, verify_inclusion
from comity.audit.quorum import SizedKeys, note_cosignatures, open_log_checkpoint
from comity.audit.rfc6962 import EMPTY_ROOT, hash_leaf
from comity.core.keys import SigningKey, VerifyingKey

__all__ = ["MAX_PROOF_HASHES", "ProofFor", "Witness", "read_latest_cosigned"]

#: The consistency proof between two tree sizes (first, second), when a witness step needs one.
ProofFor = Callable[[int, int], Sequence[bytes] | None]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS accepted (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    note BLOB NOT NULL
)""",
    # The cosignature line this witness made on a checkpoint it accepted (the newest counts).
    """CREATE TABLE IF NOT EXISTS cosigned (
    tree_size INTEGER PRIMARY KEY,
    line TEXT NOT NULL
)""",
    # Log-signed checkpoints refused as inconsistent: proof of the log's misbehaviour.
    """CREATE TABLE IF NOT EXISTS evidence (
    received REAL NOT NULL,
    reason TEXT NOT NULL,
    note BLOB NOT NULL
)""",
)

#: tlog-witness: "The client MUST NOT send more than 63 consistency proof lines."
MAX_PROOF_HASHES = 63


class Witness:
    """Checks and cosigns one log's checkpoints; state persists across restarts. Use :meth:`open`."""

    def __init__(
        self,
        db: sqlite3.Connection,
        signer: CosignatureSigner,
        log_key: Ed25519Verifier,
        clock: Callable[[], float],
        log_keys: SizedKeys | None = None,
    ) -> None:
        self._db = db
        self._signer = signer
        self._log_key = log_key
        self._log_keys = log_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._held: str | None = None

    @classmethod
    def open(
        cls,
        state: Path,
        *,
        name: str,
        key: Ed25519PrivateKey | SigningKey,
        log_origin: str,
        log_key: Ed25519PublicKey | VerifyingKey | Ed25519Verifier,
        log_keys: SizedKeys | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Witness:
        """Open (or create) the witness state file for the log ``log_origin`` signed by ``log_key``.

        ``log_keys`` is the log's key history by tree size (the federation file's
        ``[[gateway.log.keys]]``): with it, a checkpoint of size *n* must be signed by a key whose
        range holds *n*, so the witness follows a rotation of the log key; without it, every
        checkpoint must be signed by ``log_key``.
        """
        if isinstance(log_key, VerifyingKey):
            log_key = log_key.public_key
        verifier = log_key if isinstance(log_key, Ed25519Verifier) else Ed25519Verifier(log_origin, log_key)
        if verifier.name != log_origin:
            raise WitnessError(f"the log key is named {verifier.name!r}, not the origin {log_origin!r}")
        state.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(state, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            db.execute(statement)
        private = key.private_key if isinstance(key, SigningKey) else key
        return cls(db, CosignatureSigner(name, private), verifier, clock, log_keys)

    def use_log_keys(self, log_keys: SizedKeys) -> None:
        """Check checkpoints under a newly trusted federation file's log key history from now on
        (a checkpoint under a key it retired or revoked is refused; the state already accepted stays)."""
        self._log_keys = log_keys

    def hold(self, reason: str) -> None:
        """Cosign nothing (refuse with ``reason``) until :meth:`release`: its state is not yet checked."""
        self._held = reason

    def release(self) -> None:
        """Cosign again after :meth:`hold`."""
        self._held = None

    @property
    def held(self) -> str | None:
        """Why the witness cosigns nothing now (None: it cosigns)."""
        return self._held

    def _check_not_held(self) -> None:
        if self._held is not None:
            raise WitnessError(self._held)

    @property
    def log_verifier(self) -> Ed25519Verifier:
        """The log key this witness checks checkpoints with."""
        return self._log_key

    @property
    def verifier(self) -> CosignatureVerifier:
        """This witness's cosignature verifier (the log and auditors need it)."""
        return self._signer.verifier

    def latest(self) -> Checkpoint:
        """The largest checkpoint accepted so far (the empty tree before the first)."""
        with self._lock:
            size, root = self._latest()
        return Checkpoint(self._log_key.name, size, root)

    def _latest(self) -> tuple[int, bytes]:
        row = self._db.execute(
            "SELECT tree_size, root_hash FROM accepted ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        return (0, EMPTY_ROOT) if row is None else (int(row[0]), bytes(row[1]))

    def latest_cosigned(self) -> bytes | None:
        """The latest checkpoint this witness cosigned, as a note with its cosignature (None before any)."""
        with self._lock:
            row = self._db.execute(
                "SELECT a.note, c.line FROM cosigned c JOIN accepted a ON a.tree_size = c.tree_size "
                "ORDER BY c.tree_size DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return with_cosignatures(bytes(row[0]), [NoteSignature.parse_line(str(row[1]).rstrip("\n"))])

    def proof_needed(self, size: int) -> tuple[int, int] | None:
        """The (first, second) tree sizes of the consistency proof a checkpoint of ``size`` needs now.

        None when it needs none: the witness is at ``size``, has accepted nothing yet, or
        remembers a checkpoint of ``size`` (a smaller one it accepted before). A checkpoint
        larger than the latest needs the proof from the latest; a smaller one, the proof to it.
        """
        with self._lock:
            return self._needed(size)

    def _needed(self, size: int) -> tuple[int, int] | None:
        latest, _ = self._latest()
        if size == latest or latest == 0:
            return None
        if size > latest:
            return (latest, size)
        if self._remembered(size) is not None:
            return None
        return (size, latest)

    def _remembered(self, size: int) -> bytes | None:
        if size == 0:
            return EMPTY_ROOT
        row = self._db.execute("SELECT root_hash FROM accepted WHERE tree_size = ?", (size,)).fetchone()
        return None if row is None else bytes(row[0])

    def witness(self, checkpoint: bytes, consistency: Sequence[bytes] | None = None) -> str:
        """Verify a signed checkpoint against everything accepted before; cosign and remember it.

        ``consistency`` proves the checkpoint extends the last accepted one (or, for a smaller
        checkpoint, that the last one extends it). Returns the cosignature line, or ``""`` when
        the checkpoint is older than one already cosigned. Raises :class:`WitnessError`,
        :class:`ConsistencyRequired` or :class:`InconsistentLog`.
        """
        self._check_not_held()
        return self._witness_opened(self._open(checkpoint), checkpoint, consistency)

    def _witness_opened(
        self,
        signed: SignedCheckpoint,
        checkpoint: bytes,
        consistency: Sequence[bytes] | None,
        proof_for: ProofFor | None = None,
    ) -> str:
        """:meth:`witness` of a checkpoint whose log signature :meth:`_open` has verified."""
        new = signed.checkpoint
        with self._lock:
            if proof_for is not None:
                # Chosen under the lock: the state cannot move between choosing the proof and using it.
                needed = self._needed(new.size)
                consistency = None if needed is None else proof_for(*needed)
            size, root = self._latest()
            if new.size < size:
                self._check_older(new, (size, root), consistency)
                self._remember(new, checkpoint)
                return ""
            if new.size == size:
                if new.root_hash != root:
                    raise InconsistentLog(f"split view: two different trees of size {size}")
            else:
                self._check_extends(new, (size, root), consistency)
            line = self._signer.cosign(signed.text, timestamp=int(self._clock())).line()
            self._remember(new, checkpoint, line)
        return line

    def add_checkpoint(self, old_size: int, consistency: Sequence[bytes], checkpoint: bytes) -> str:
        """C2SP tlog-witness add-checkpoint: cosign ``checkpoint`` if it extends the latest one cosigned.

        ``old_size`` must be the size of the latest checkpoint this witness cosigned (0 before
        any) and ``consistency`` the RFC 6962 proof from it to the checkpoint (empty from 0 or
        for the same size). Checking and remembering happen under one lock, in one transaction.
        Raises :class:`WitnessError` (bad signature or request), :class:`ConsistencyRequired`
        (409: the witness is at ``from_size``) or :class:`InconsistentLog` (a fork: kept as
        evidence). Returns the cosignature line.
        """
        self._check_not_held()
        signed = self._open(checkpoint)
        new = signed.checkpoint
        if old_size > new.size:
            raise WitnessError(f"the old size {old_size} is larger than the checkpoint's size {new.size}")
        if len(consistency) > MAX_PROOF_HASHES:
            raise WitnessError(f"a consistency proof has at most {MAX_PROOF_HASHES} hashes")
        with self._lock:
            size, root = self._latest()
            if old_size != size:
                raise ConsistencyRequired(
                    f"this witness last cosigned tree size {size}, not {old_size}",
                    from_size=size,
                    hint=f"send the consistency proof from tree size {size}",
                )
            try:
                self._check_add(new, (size, root), consistency)
            except InconsistentLog as exc:
                self._keep_evidence(checkpoint, exc.message)
                raise
            line = self._signer.cosign(signed.text, timestamp=int(self._clock())).line()
            self._remember(new, checkpoint, line)
        return line

    def _check_add(self, new: Checkpoint, old: tuple[int, bytes], proof: Sequence[bytes]) -> None:
        size, root = old
        if size == new.size:
            if new.root_hash != root:
                raise InconsistentLog(f"split view: two different trees of size {size}")
            if proof:
                raise WitnessError("the consistency proof between equal tree sizes must be empty")
            return
        if size == 0:
            if proof:
                raise WitnessError("the consistency proof from tree size 0 must be empty")
            return
        try:
            verify_consistency(size, new.size, proof, root, new.root_hash)
        except InvalidProof as exc:
            raise InconsistentLog(
                f"tree size {new.size} does not extend tree size {size}: {exc.message}"
            ) from None

    def adopt(self, cosigned: bytes, *, earlier_keys: Sequence[CosignatureVerifier] = ()) -> Checkpoint:
        """Take a checkpoint this witness cosigned earlier (its own key's cosignature on it) as its state.

        For re-initialising a witness that lost its state: what it provably cosigned before is
        the floor it must never go below again. ``earlier_keys`` are this witness's keys before
        a rotation (the federation file's history), whose cosignatures count as its own too.
        Raises :class:`WitnessError` unless the note carries the log's signature and a
        cosignature by this witness's own key.
        """
        try:
            signed = self.open_log(cosigned)
        except AuditError as exc:
            raise WitnessError(f"refusing to adopt the checkpoint: {exc.message}") from None
        own = [c for c in signed.cosignatures if self._is_own(signed.text, c, earlier_keys)]
        if not own:
            raise WitnessError("refusing to adopt a checkpoint this witness did not cosign")
        log_lines = tuple(s for s in signed.note.signatures if s.name == self._log_key.name)
        with self._lock:
            if signed.checkpoint.size > self._latest()[0]:
                self._remember(signed.checkpoint, Note(signed.text, log_lines).to_bytes(), own[0].line())
        return signed.checkpoint

    def _is_own(self, text: str, line: NoteSignature, earlier: Sequence[CosignatureVerifier]) -> bool:
        for verifier in (self.verifier, *earlier):
            if line.name == verifier.name and line.key_id == verifier.key_id:
                try:
                    verifier.verify(text, line)
                except AuditError:
                    return False
                return True
        return False

    def open_log(self, checkpoint: bytes) -> SignedCheckpoint:
        """Verify a checkpoint's log signature under the key its tree size calls for.

        Raises :class:`AuditError`. Cosignature lines are returned unverified in
        ``cosignatures`` (every signature line not by the log).
        """
        log_keys = self._log_keys
        if log_keys is None:
            signed = open_checkpoint(checkpoint, self._log_key)
        else:
            signed = open_log_checkpoint(checkpoint, self._log_key.name, log_keys)
        others = tuple(note_cosignatures(checkpoint, self._log_key.name))
        return SignedCheckpoint(signed.checkpoint, signed.note, others)

    def _keep_evidence(self, note: bytes, reason: str) -> None:
        self._db.execute(
            "INSERT INTO evidence (received, reason, note) VALUES (?, ?, ?)", (self._clock(), reason, note)
        )

    def evidence(self) -> list[tuple[str, bytes]]:
        """``(reason, log-signed checkpoint)`` of every checkpoint refused as inconsistent."""
        with self._lock:
            rows = self._db.execute("SELECT reason, note FROM evidence ORDER BY received").fetchall()
        return [(str(r[0]), bytes(r[1])) for r in rows]

    def witness_entry(
        self,
        *,
        checkpoint: bytes,
        entry: bytes,
        leaf_index: int,
        inclusion: Sequence[bytes],
        consistency: Sequence[bytes] | None = None,
        proof_for: ProofFor | None = None,
    ) -> str:
        """Check that ``entry`` is leaf ``leaf_index`` of the checkpoint, then :meth:`witness` it.

        With ``proof_for``, ``consistency`` is ignored: the proof is asked of ``proof_for(first,
        second)`` under the witness's lock, for the sizes :meth:`proof_needed` names then (and only
        when one is needed), so another caller (the tlog-witness add-checkpoint call) cannot move
        the witness between choosing the proof and checking it. ``proof_for`` may raise to refuse.
        """
        self._check_not_held()
        # Opened (its log signature verified) once, for the inclusion check and the witnessing.
        signed = self._open(checkpoint)
        new = signed.checkpoint
        try:
            verify_inclusion(hash_leaf(entry), leaf_index, new.size, inclusion, new.root_hash)
        except InvalidProof as exc:
            raise WitnessError(f"the entry is not proven to be in the checkpoint: {exc.message}") from None
        return self._witness_opened(signed, checkpoint, consistency, proof_for)

    def close(self) -> None:
        """Close the state file."""
        with self._lock:
            self._db.close()

    def _open(self, checkpoint: bytes) -> SignedCheckpoint:
        try:
            return self.open_log(checkpoint)
        except AuditError as exc:
            raise WitnessError(f"refusing the checkpoint: {exc.message}") from None

    def _check_extends(self, new: Checkpoint, old: tuple[int, bytes], proof: Sequence[bytes] | None) -> None:
        size, root = old
        if proof is None and size > 0:
            raise ConsistencyRequired(
                f"a consistency proof from tree size {size} to {new.size} is needed",
                from_size=size,
                hint="send the consistency proof from the witness's last accepted checkpoint",
            )
        try:
            verify_consistency(size, new.size, proof or [], root, new.root_hash)
        except InvalidProof as exc:
            raise InconsistentLog(
                f"tree size {new.size} does not extend tree size {size}: {exc.message}"
            ) from None

    def _check_older(self, new: Checkpoint, latest: tuple[int, bytes], proof: Sequence[bytes] | None) -> None:
        remembered = self._remembered(new.size)
        if remembered is not None:
            if remembered != new.root_hash:
                raise InconsistentLog(f"rollback or fork: tree size {new.size} had another root before")
            return
        size, root = latest
        if proof is None:
            raise ConsistencyRequired(
                f"a consistency proof from tree size {new.size} to {size} is needed", from_size=new.size
            )
        try:
            verify_consistency(new.size, size, proof, new.root_hash, root)
        except InvalidProof as exc:
            raise InconsistentLog(
                f"tree size {size} does not extend tree size {new.size}: {exc.message}"
            ) from None

    def _remember(self, new: Checkpoint, note: bytes, line: str | None = None) -> None:
        # One durable transaction: the state is either the old one or the new one.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT OR IGNORE INTO accepted (tree_size, root_hash, note) VALUES (?, ?, ?)",
                (new.size, new.root_hash, note),
            )
            if line is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO cosigned (tree_size, line) VALUES (?, ?)", (new.size, line)
                )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def read_latest_cosigned(state: Path) -> bytes | None:
    """The latest checkpoint a witness cosigned, with its cosignature, read from its state file.

    Opens the file read-only (the witness may be running): for a legal officer pinning what
    their own node's witness cosigned, without going through the gateway. Raises
    :class:`WitnessError` if the file is not a witness state.
    """
    if not state.exists():
        raise WitnessError(f"no witness state file at {state}")
    db = sqlite3.connect(f"{state.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT a.note, c.line FROM cosigned c JOIN accepted a ON a.tree_size = c.tree_size "
            "ORDER BY c.tree_size DESC LIMIT 1"
        ).fetchone()
    except sqlite3.Error as exc:
        raise WitnessError(f"{state} is not a witness state file: {exc}") from None
    finally:
        db.close()
    if row is None:
        return None
    return with_cosignatures(bytes(row[0]), [NoteSignature.parse_line(str(row[1]).rstrip("\n"))])
