"""The RPC edge: Comity errors to gRPC statuses and back.

Servers translate errors exactly once, here: a :class:`ComityError` becomes its status code,
its message and, for policy refusals, a ``google.rpc.Status`` whose details carry a
``comity.v1.PolicyDenial``. Anything else becomes INTERNAL with an incident id; the
traceback stays in the server's log and never reaches the caller. The SDK maps statuses
back to the same classes with :func:`error_from_status`.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2

from comity.core import errors
from comity.v1 import comity_pb2 as pb

__all__ = ["GRPC_DETAILS_KEY", "error_from_status", "guard_stream", "guard_unary", "to_trailing_metadata"]

GRPC_DETAILS_KEY = "grpc-status-details-bin"

_log = logging.getLogger("comity.rpc")


def to_trailing_metadata(err: errors.ComityError) -> tuple[tuple[str, str | bytes], ...]:
    """The ``google.rpc.Status`` trailer for ``err`` (a PolicyDenial for policy refusals, or the
    receipt of a logged refusal), then the error's own :attr:`~errors.ComityError.trailers`."""
    # The Status message must equal the call's message, or google's rpc_status.from_call refuses it.
    status = status_pb2.Status(code=err.code.value[0], message=_message(err))
    if err.violations:
        denial = pb.PolicyDenial(
            query_id=err.query_id,
            bundle_digest=err.bundle_digest,
            violations=[
                pb.RuleViolation(code=v.code, message=v.message, legal_basis=v.legal_basis, check=v.check)
                for v in err.violations
            ],
        )
        if isinstance(err.receipt, pb.Receipt):
            denial.receipt.CopyFrom(err.receipt)
        if isinstance(err.node_decision, pb.Envelope):
            denial.node_decision.CopyFrom(err.node_decision)
        packed = any_pb2.Any()
        packed.Pack(denial)
        status.details.append(packed)
    elif isinstance(err.receipt, pb.Receipt):
        packed = any_pb2.Any()
        packed.Pack(err.receipt)
        status.details.append(packed)
    return ((GRPC_DETAILS_KEY, status.SerializeToString()), *err.trailers)


def _message(err: errors.ComityError) -> str:
    return f"{err.message} (hint: {err.hint})" if err.hint else err.message


def _internal(exc: BaseException) -> errors.InternalError:
    incident = uuid.uuid4().hex[:12]
    _log.error("internal error, incident %s", incident, exc_info=exc)
    return errors.InternalError(f"internal error (incident {incident}); the server's log has the details")


T = TypeVar("T")
R = TypeVar("R")
Handler = Callable[[Any, T, grpc.aio.ServicerContext[Any, Any]], Awaitable[R]]
StreamHandler = Callable[[Any, T, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[R]]


def guard_unary(fn: Handler[T, R]) -> Handler[T, R]:
    """Wrap a unary servicer method so every error leaves as a proper gRPC status."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: T, context: grpc.aio.ServicerContext[Any, Any]) -> R:
        try:
            return await fn(self, request, context)
        except errors.ComityError as err:
            await context.abort(err.code, _message(err), trailing_metadata=to_trailing_metadata(err))
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            internal = _internal(exc)
            await context.abort(internal.code, internal.message)
        raise AssertionError("unreachable: context.abort raises")

    return wrapper


def guard_stream(fn: StreamHandler[T, R]) -> StreamHandler[T, R]:
    """Wrap a server-streaming servicer method like :func:`guard_unary`."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: T, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[R]:
        try:
            async for item in fn(self, request, context):
                yield item
        except errors.ComityError as err:
            await context.abort(err.code, _message(err), trailing_metadata=to_trailing_metadata(err))
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            internal = _internal(exc)
            await context.abort(internal.code, internal.message)

    return wrapper


def error_from_status(code: grpc.StatusCode, message: str, trailing_metadata: object) -> errors.ComityError:
    """Rebuild the Comity error a server raised from the status a client received."""
    cls = errors.error_class(code)
    details = _status_details(trailing_metadata)
    err = cls(message)
    err.remote = True
    for any_msg in details:
        denial = pb.PolicyDenial()
        if any_msg.Unpack(denial):
            err.violations = [
                errors.RuleViolationInfo(v.code, v.message, v.legal_basis, check=v.check)
                for v in denial.violations
            ]
            err.bundle_digest = denial.bundle_digest
            err.query_id = denial.query_id
            if denial.HasField("receipt"):
                err.receipt = denial.receipt
            if denial.HasField("node_decision"):
                err.node_decision = denial.node_decision
            continue
        receipt = pb.Receipt()
        if any_msg.Unpack(receipt):
            err.receipt = receipt
    return err


def _status_details(trailing_metadata: object) -> list[any_pb2.Any]:
    # Sync calls give a tuple of pairs, aio calls a grpc.aio.Metadata: both iterate as pairs.
    pairs: Iterable[tuple[str, str | bytes]] = trailing_metadata or ()  # type: ignore[assignment]
    for key, value in pairs:
        if key == GRPC_DETAILS_KEY and isinstance(value, bytes):
            return list(status_pb2.Status.FromString(value).details)
    return []
