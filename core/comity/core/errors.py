"""The root of Comity's exception tree.

Every component raises subclasses of :class:`ComityError`. Each class knows its gRPC
status code, so errors are translated once, at the RPC edge (``comity.core.rpc``), and
the SDK maps status codes back to the same classes. Messages are written for people:
what is wrong and how to fix it, never a secret or a selector value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    # Types only: the generated messages do not import this module, but keep it light to import.
    from comity.v1 import comity_pb2 as pb

__all__ = [
    "AlreadyExists",
    "Attempt",
    "ComityError",
    "ConfigError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InternalError",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "RuleViolationInfo",
    "Unauthenticated",
    "Unavailable",
    "error_class",
]


class RuleViolationInfo:
    """One check that refused a request: the agreement rule (``code``), public message, legal
    basis, and the stable check code (``check``, e.g. ``ORDER_EXPIRED``; for a policy rule, the
    rule id itself)."""

    __slots__ = ("check", "code", "legal_basis", "message")

    def __init__(self, code: str, message: str, legal_basis: str = "", check: str = "") -> None:
        self.code = code
        self.message = message
        self.legal_basis = legal_basis
        self.check = check or code

    def __repr__(self) -> str:
        return (
            f"RuleViolationInfo({self.code!r}, {self.message!r}, {self.legal_basis!r}, check={self.check!r})"
        )

    def _key(self) -> tuple[str, str, str, str]:
        return (self.code, self.message, self.legal_basis, self.check)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuleViolationInfo):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


@dataclass(frozen=True, slots=True)
class Attempt:
    """One submission of a request by a client: the query id it carried (empty for a request
    that has none), the gateway address it went to, and how it ended (``answered``, or the
    status and why)."""

    query_id: str
    address: str
    outcome: str


class ComityError(Exception):
    """Base of all Comity errors; ``code`` is the gRPC status it maps to.

    Any error may carry ``violations``: the checks that refused the request, each with its
    stable check code and the agreement rule it enforces (see :mod:`comity.core.refusals`).
    They travel in the status details whatever the status code, so an INVALID_ARGUMENT for a
    wildcard selector still names PARTICULARITY.
    """

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    # A comity.v1.Receipt proving the refusal was logged, when the server sent one.
    receipt: pb.Receipt | None = None
    # True when the error was rebuilt from a server's status (the status code is the server's).
    remote: bool = False
    # A comity.v1.Envelope around the refusing node's signed NodeDecision, when a node refused.
    node_decision: pb.Envelope | None = None
    # Further (key, value) trailers a server sends with the status, e.g. a witness's tree size.
    trailers: tuple[tuple[str, str], ...] = ()
    # Every submission a client made for the request, in order, the last one this error's (set by
    # the SDK, which may send a query again through another gateway replica).
    attempts: tuple[Attempt, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        violations: list[RuleViolationInfo] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.violations: list[RuleViolationInfo] = list(violations or [])
        self.bundle_digest = ""
        self.query_id = ""

    @property
    def rule_codes(self) -> list[str]:
        """The agreement rules that refused the request (empty when none was named)."""
        return [v.code for v in self.violations]

    @property
    def check_codes(self) -> list[str]:
        """The stable check codes behind :attr:`rule_codes`, in the same order."""
        return [v.check for v in self.violations]

    def diagnostics(self) -> str:
        """A human explanation: what failed, which rules refused it and, where known, what to do."""
        lines = [self.message]
        lines += [f"  [{v.code}] {v.message} ({v.legal_basis})" for v in self.violations]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class InvalidArgument(ComityError):
    """The request is malformed: a field is missing, empty or out of range."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ComityError):
    """A named thing (node, agency, entry) does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ComityError):
    """Something that must be unique was seen before (a replayed query id)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class Unauthenticated(ComityError):
    """The caller's identity could not be established."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ComityError):
    """The caller is known but the request is refused; ``violations`` lists every rule that fired."""

    code = grpc.StatusCode.PERMISSION_DENIED

    def __init__(
        self,
        message: str,
        *,
        violations: list[RuleViolationInfo] | None = None,
        bundle_digest: str = "",
        query_id: str = "",
        receipt: pb.Receipt | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, violations=violations)
        self.bundle_digest = bundle_digest
        self.query_id = query_id
        self.receipt = receipt


class FailedPrecondition(ComityError):
    """The system is not in a state where the request can be served (e.g. inconsistent log)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(ComityError):
    """A size or rate limit was exceeded."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ComityError):
    """A dependency (node, audit log, store) cannot be reached; the request was not served."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ComityError):
    """The deadline passed before an answer came."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class InternalError(ComityError):
    """A bug or an unexpected failure; details stay in the server's log."""

    code = grpc.StatusCode.INTERNAL


class ConfigError(ComityError):
    """A configuration or federation file is invalid; the message names the field."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str, *, field: str = "", source: str = "", hint: str | None = None) -> None:
        where = f"{source}: " if source else ""
        at = f"{field}: " if field else ""
        super().__init__(f"{where}{at}{message}", hint=hint)
        self.field = field
        self.source = source


_BY_CODE: dict[grpc.StatusCode, type[ComityError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def error_class(code: grpc.StatusCode) -> type[ComityError]:
    """The error class of gRPC status ``code`` (InternalError for a code Comity does not use)."""
    return _BY_CODE.get(code, InternalError)
