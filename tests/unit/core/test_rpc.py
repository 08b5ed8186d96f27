"""Errors cross the RPC edge once: server error class → status → the same class in the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from comity.core import errors
from comity.core.rpc import error_from_status, guard_stream, guard_unary
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc


class _Failing(pb_grpc.GatewayServicer):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    @guard_unary
    async def Submit(self, request: pb.SubmitRequest, context: Any) -> pb.QueryResult:
        raise self.exc

    @guard_stream
    async def SubmitStream(self, request: pb.SubmitRequest, context: Any) -> AsyncIterator[pb.ResultChunk]:
        yield pb.ResultChunk(records=pb.RecordBatch())
        raise self.exc


async def _call(exc: BaseException, *, stream: bool = False) -> errors.ComityError:
    server = grpc.aio.server()
    pb_grpc.add_GatewayServicer_to_server(_Failing(exc), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GatewayStub(channel)
            try:
                if stream:
                    async for _ in stub.SubmitStream(pb.SubmitRequest(), timeout=5):
                        pass
                else:
                    await stub.Submit(pb.SubmitRequest(), timeout=5)
            except grpc.aio.AioRpcError as rpc_error:
                return error_from_status(
                    rpc_error.code(), rpc_error.details() or "", rpc_error.trailing_metadata()
                )
    finally:
        await server.stop(None)
    raise AssertionError("the call succeeded")


@pytest.mark.parametrize(
    "exc",
    [
        errors.InvalidArgument("selectors[0]: empty"),
        errors.NotFound("unknown node 'xx-node'"),
        errors.Unauthenticated("token expired"),
        errors.Unavailable("audit log unavailable"),
        errors.ResourceExhausted("too big"),
        errors.FailedPrecondition("inconsistent"),
    ],
)
async def test_each_error_class_round_trips(exc: errors.ComityError) -> None:
    got = await _call(exc)
    assert type(got) is type(exc)
    assert got.message.startswith(exc.message)


async def test_policy_denial_carries_every_rule() -> None:
    violations = [
        errors.RuleViolationInfo("SERIOUS_CRIME", "offence below threshold", "18 U.S.C. §2523(b)(4)(D)(i)"),
        errors.RuleViolationInfo("JUSTIFICATION", "justification is empty", "§2523(b)(4)(D)(iv)"),
    ]
    exc = errors.PermissionDenied(
        "refused by policy", violations=violations, bundle_digest="abc", query_id="q1"
    )
    got = await _call(exc)
    assert isinstance(got, errors.PermissionDenied)
    assert got.violations == violations
    assert got.rule_codes == ["SERIOUS_CRIME", "JUSTIFICATION"]
    assert got.bundle_digest == "abc"
    assert got.query_id == "q1"


async def test_unexpected_exception_becomes_internal_without_details() -> None:
    got = await _call(RuntimeError("secret database password in message"))
    assert isinstance(got, errors.InternalError)
    assert "secret" not in got.message
    assert "incident" in got.message


async def test_streaming_errors_are_translated_too() -> None:
    got = await _call(errors.Unavailable("node down"), stream=True)
    assert isinstance(got, errors.Unavailable)
