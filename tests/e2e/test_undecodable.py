"""Undecodable bytes to every method of the gateway and the nodes: INVALID_ARGUMENT, no traceback."""

from __future__ import annotations

import logging

import grpc
import pytest

from comity.core.federation import Federation
from comity.core.rpc import error_from_status
from comity.core.tls import node_channel_credentials
from comity.sdk.demo.run import RunningFederation
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")

GARBAGE = b"\xff\xff\xff\xff"  # no protobuf message parses this (a truncated varint tag)


def _methods(service: str) -> list[tuple[str, bool]]:
    """(path, server streaming) of every method of ``service``."""
    methods = pb.DESCRIPTOR.services_by_name[service].methods
    return [(f"/comity.v1.{service}/{m.name}", m.server_streaming) for m in methods]


async def _send(channel: grpc.aio.Channel, path: str, streaming: bool) -> grpc.aio.AioRpcError:
    try:
        if streaming:
            call = channel.unary_stream(path, request_serializer=None, response_deserializer=None)
            async for _ in call(GARBAGE, timeout=10):
                pass
        else:
            await channel.unary_unary(path, request_serializer=None, response_deserializer=None)(
                GARBAGE, timeout=10
            )
    except grpc.aio.AioRpcError as exc:
        return exc
    raise AssertionError(f"{path} accepted undecodable bytes")


def _assert_refused(exc: grpc.aio.AioRpcError, path: str) -> None:
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (path, exc.code(), exc.details())
    details = exc.details() or ""
    assert "DecodeError" not in details and "Exception" not in details and "SubmitRequest" not in details
    err = error_from_status(exc.code(), details, exc.trailing_metadata())
    assert err.check_codes == ["REQUEST_DECODE"], path


async def test_every_method_refuses_undecodable_bytes_without_a_traceback(
    running: RunningFederation, caplog: pytest.LogCaptureFixture
) -> None:
    fed = running.federation
    caplog.set_level(logging.DEBUG)
    creds = grpc.ssl_channel_credentials(root_certificates=fed.layout.gateway.ca_cert.read_bytes())
    async with grpc.aio.secure_channel(fed.layout.gateway.endpoint, creds) as channel:
        for service in ("Gateway", "AuditLog"):
            for path, streaming in _methods(service):
                _assert_refused(await _send(channel, path, streaming), path)
    federation = Federation.load(fed.layout.federation_file)
    gateway = fed.layout.gateway
    for node in federation.nodes():
        node_creds = node_channel_credentials(node, gateway.client_cert, gateway.client_key)
        options = (("grpc.ssl_target_name_override", node.host),)
        async with grpc.aio.secure_channel(node.endpoint, node_creds, options=options) as channel:
            for service in ("DataNode", "Witness"):
                for path, streaming in _methods(service):
                    _assert_refused(await _send(channel, path, streaming), path)
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    assert any("undecodable request" in r.getMessage() for r in caplog.records)
