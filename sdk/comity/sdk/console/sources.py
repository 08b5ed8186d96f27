"""Where the console's mirror syncs from: the gateway's AuditLog service, or a copy of the log database.

Nothing a source returns is trusted: the verifier checks checkpoints against the federation's
log and witness keys and entries against those checkpoints. A source only answers four
questions (the newest quorum checkpoint, entries, and the two kinds of proof). The gateway
withholds the entries the officer's country may not read: those come as their leaf hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from comity.audit.errors import AuditError
from comity.audit.note import Ed25519Verifier
from comity.audit.quorum import Quorum
from comity.audit.store import LogStore
from comity.sdk.auditor import AuditClient
from comity.sdk.console.mirror import Withheld

__all__ = ["DatabaseSource", "GatewaySource", "LogSource", "OfferedCheckpoint"]


@dataclass(frozen=True, slots=True)
class OfferedCheckpoint:
    """A checkpoint note and its cosignature lines, as a source offers them (unverified)."""

    note: bytes
    cosignatures: tuple[str, ...]


class LogSource(Protocol):
    """What the verifier reads from."""

    #: Words for the status line ("the gateway at ...", "the database copy ...").
    description: str

    def quorum_checkpoint(self) -> OfferedCheckpoint:
        """The newest checkpoint the source says carries a witness quorum."""
        ...

    def entries(self, start: int, end: int) -> Iterator[bytes | Withheld]:
        """Entries ``[start, end)`` in order (a withheld one as its leaf hash)."""
        ...

    def inclusion(self, index: int, tree_size: int) -> list[bytes]:
        """The inclusion proof of entry ``index`` in the tree of ``tree_size`` entries."""
        ...

    def consistency(self, first: int, second: int) -> list[bytes]:
        """The consistency proof between two tree sizes."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class GatewaySource:
    """The gateway's AuditLog service, with a legal officer's token (asked for per request)."""

    def __init__(self, target: str, *, root_certificates: bytes, token: Callable[[], str]) -> None:
        self._client = AuditClient(target, root_certificates=root_certificates, token=token)
        self.description = f"the gateway at {target}"

    def quorum_checkpoint(self) -> OfferedCheckpoint:
        response = self._client.checkpoint()
        return OfferedCheckpoint(response.checkpoint.signed_note, tuple(response.cosignatures))

    def entries(self, start: int, end: int) -> Iterator[bytes | Withheld]:
        for entry in self._client.entries(start, end):
            yield Withheld(bytes(entry.leaf_hash)) if entry.withheld else entry.data

    def inclusion(self, index: int, tree_size: int) -> list[bytes]:
        return self._client.inclusion(index, tree_size)

    def consistency(self, first: int, second: int) -> list[bytes]:
        return self._client.consistency(first, second)

    def close(self) -> None:
        self._client.close()


class DatabaseSource:
    """A copy of the log database (SQLite file or PostgreSQL URL), read-only.

    The newest quorum checkpoint is the newest cosigned one whose cosignatures meet the
    quorum under the federation's keys (a database does not say which one that is).
    """

    def __init__(self, url: str, *, quorum: Quorum, log_key: Ed25519Verifier) -> None:
        self._store = LogStore.open(url, create=False)
        self._quorum = quorum
        self._log_key = log_key
        self.description = "the log database copy"

    def quorum_checkpoint(self) -> OfferedCheckpoint:
        newest: OfferedCheckpoint | None = None
        for size, _names in self._store.cosigners():
            note = self._store.checkpoint(size)
            lines = tuple(self._store.cosignatures(size))
            newest = newest or OfferedCheckpoint(note, lines)
            try:
                signed = self._quorum.open(note, self._log_key)
                if self._quorum.is_quorum(self._quorum.cosigners(signed.text, lines)):
                    return OfferedCheckpoint(note, lines)
            except AuditError:
                continue
        # None has a quorum: the newest cosigned one (else the newest), so the verifier says what lacks.
        return newest or OfferedCheckpoint(self._store.checkpoint(), ())

    def entries(self, start: int, end: int) -> Iterator[bytes | Withheld]:
        for first in range(start, end, 1000):
            yield from self._store.entries(first, min(end, first + 1000))

    def inclusion(self, index: int, tree_size: int) -> list[bytes]:
        return self._store.inclusion_proof(index, tree_size)

    def consistency(self, first: int, second: int) -> list[bytes]:
        return self._store.consistency_proof(first, second)

    def use_trust(self, *, quorum: Quorum, log_key: Ed25519Verifier) -> None:
        """Judge quorum checkpoints under a newer federation version from the next call."""
        self._quorum, self._log_key = quorum, log_key

    def close(self) -> None:
        self._store.close()
