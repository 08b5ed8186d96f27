"""Every server answers reflection v1 and v1alpha: list the services, describe one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from comity.core.bootstrap import init_federation
from comity.core.reflection import V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME
from comity.core.serving import start_server
from comity.core.tls import gateway_server_credentials
from comity.v1 import comity_pb2_grpc as pb_grpc


def _call(channel: grpc.aio.Channel, service: str) -> grpc.aio.StreamStreamMultiCallable:
    return channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )


def _requests(
    *requests: reflection_pb2.ServerReflectionRequest,
) -> Iterator[reflection_pb2.ServerReflectionRequest]:
    yield from requests


@pytest.mark.asyncio
@pytest.mark.parametrize("service", [V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME])
async def test_reflection_lists_and_describes_services(tmp_path: Path, service: str) -> None:
    layout = init_federation(tmp_path / "fed", gateway_port=1, countries={"US": 2, "CA": 3})
    handle = await start_server(
        listen="127.0.0.1:0",
        register=lambda server: pb_grpc.add_GatewayServicer_to_server(pb_grpc.GatewayServicer(), server),
        service_names=["comity.v1.Gateway"],
        credentials=gateway_server_credentials(layout.gateway.tls_cert, layout.gateway.tls_key),
    )
    creds = grpc.ssl_channel_credentials(root_certificates=layout.gateway.ca_cert.read_bytes())
    try:
        async with grpc.aio.secure_channel(f"127.0.0.1:{handle.port}", creds) as channel:
            call = _call(channel, service)(
                _requests(
                    reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol="comity.v1.Gateway"),
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol=V1_SERVICE_NAME),
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Service"),
                )
            )
            answers = [answer async for answer in call]
    finally:
        await handle.stop(0)
    listed = {s.name for s in answers[0].list_services_response.service}
    assert {"comity.v1.Gateway", "grpc.health.v1.Health", V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME} <= listed
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(blob)
        for blob in answers[1].file_descriptor_response.file_descriptor_proto
    ]
    gateway_file = next(f for f in files if f.package == "comity.v1")
    assert "Gateway" in {s.name for s in gateway_file.service}
    (v1_file,) = (
        descriptor_pb2.FileDescriptorProto.FromString(blob)
        for blob in answers[2].file_descriptor_response.file_descriptor_proto
    )
    assert v1_file.package == "grpc.reflection.v1"
    assert v1_file.service[0].method[0].input_type == ".grpc.reflection.v1.ServerReflectionRequest"
    assert answers[3].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
