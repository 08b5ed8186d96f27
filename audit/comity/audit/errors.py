"""The audit component's exceptions, rooted in :class:`AuditError`.

Each class also subclasses the core error that carries its gRPC status, so a caller can
catch ``AuditError`` for anything the log raises, or a core class (``Unavailable``, ...)
for the status it maps to at the RPC edge.
"""

from __future__ import annotations

from comity.core.errors import (
    ComityError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AuditError",
    "AuditUnavailable",
    "ConsistencyRequired",
    "EntryNotFound",
    "InconsistentLog",
    "InvalidEntry",
    "InvalidNote",
    "InvalidProof",
    "LogVerificationError",
    "UnverifiedNote",
    "WitnessError",
]


class AuditError(ComityError):
    """Base of every error raised by the transparency log library."""


class InvalidProof(AuditError, FailedPrecondition):
    """An inclusion or consistency proof does not prove what it claims."""


class InvalidNote(AuditError, InvalidArgument):
    """A signed note, checkpoint, key or cosignature is malformed."""


class InvalidEntry(AuditError, InvalidArgument):
    """A log entry is not a known Comity event (not JSON, unknown kind or version, wrong fields)."""


class UnverifiedNote(AuditError, Unauthenticated):
    """A signed note carries no valid signature from the expected key, or a bad one from a known key."""


class AuditUnavailable(AuditError, Unavailable):
    """The log could not be written or read; nothing was appended (fail closed).

    ``why`` is the storage's failure in a few words (``"the disk is full"``, ``"the database is
    unreachable"``), when known: what a caller may be told beside its own answer.
    """

    def __init__(self, message: str, *, hint: str | None = None, why: str = "") -> None:
        super().__init__(message, hint=hint)
        self.why = why


class EntryNotFound(AuditError, NotFound):
    """No entry, checkpoint or leaf hash matches the request."""


class WitnessError(AuditError, FailedPrecondition):
    """A witness refused a checkpoint (bad signature, bad proof, wrong origin)."""


class ConsistencyRequired(WitnessError):
    """The witness needs a consistency proof from ``from_size`` (its last accepted tree) to this one."""

    def __init__(self, message: str, *, from_size: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.from_size = from_size


class InconsistentLog(WitnessError):
    """The log showed two histories that cannot both be true: a split view or a rollback."""


class LogVerificationError(AuditError, FailedPrecondition):
    """Offline verification of a log database found a bad entry, node, checkpoint or cosignature."""

    def __init__(
        self,
        message: str,
        *,
        entry_index: int | None = None,
        tree_size: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.entry_index = entry_index
        self.tree_size = tree_size


class EntryWithdrawn(AuditError, FailedPrecondition):
    """An entry the shared state made moot (a second first use, a second review): not appended."""
