"""A node that a new version of the federation file no longer lists fails closed (real processes).

A three-country federation on a signed version 1. Version 2, signed by the threshold, removes
the UK member and its node: every server takes it, the UK node with an ALERT, and from then on
it refuses every call, as the gateway would make it (the gateway's client certificate), with
``NODE_NOT_A_MEMBER``: queries, its witness's cosignatures, its witness state; its health service
says NOT_SERVING for its services. Version 3 lists it again: it serves again (SERVING), and the
gateway's witnessing loop has its witness cosign again.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from signed_demo import SignedDemo, signed_demo

from comity.core.errors import ComityError
from comity.core.federation import Federation
from comity.core.rpc import error_from_status
from comity.core.tls import node_channel_credentials
from comity.gateway.config import load_gateway_config
from comity.sdk.demo.run import run_scenario, scenarios
from comity.sdk.profile import load_profile
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
SERVICES = [pb.DESCRIPTOR.services_by_name[s].full_name for s in ("DataNode", "Witness")]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedDemo]:
    directory = Path(tmp_path_factory.mktemp("removed"))
    with signed_demo(directory, seed=19, countries=("US", "CA", "GB")) as demo:
        yield demo


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gb_channel(running: SignedDemo) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the UK node with the gateway's client certificate, as the gateway calls it."""
    config = load_gateway_config(running.fed.gateway_config)
    node = Federation.load(running.fed.layout.federation_file).node("gb-node")
    credentials = node_channel_credentials(node, config.client_cert, config.client_key)
    options = [("grpc.ssl_target_name_override", node.host)]
    async with grpc.aio.secure_channel(node.endpoint, credentials, options=options) as channel:
        yield channel


def _without_gb(text: str) -> str:
    cut = re.sub(r'\[\[members\]\]\nagency = "gb\.nca"\n.*?(?=\[\[agreements\]\])', "", text, flags=re.S)
    assert cut != text and "gb-node" not in cut
    return cut


async def _refusal(call: object) -> ComityError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    exc = refused.value
    return error_from_status(exc.code(), exc.details() or "", exc.trailing_metadata())


async def _latest_checkpoint(channel: grpc.aio.Channel) -> pb.CheckpointResponse:
    witness = pb_grpc.WitnessStub(channel)
    response: pb.CheckpointResponse = await witness.GetLatestCosigned(
        pb.GetLatestCosignedRequest(), timeout=5
    )
    return response


async def _health(channel: grpc.aio.Channel, service: str) -> int:
    answer = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return int(answer.status)


async def _health_becomes(channel: grpc.aio.Channel, status: int) -> None:
    """Wait until the node's services all report ``status`` (set just after the version's swap)."""
    for _ in range(50):
        if [await _health(channel, s) for s in SERVICES] == [status] * len(SERVICES):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"health of {SERVICES}: {[await _health(channel, s) for s in SERVICES]}")


def _size(note: bytes) -> int:
    return int(note.decode().split("\n")[1])


async def _cosigned_past(channel: grpc.aio.Channel, size: int) -> bytes:
    """The UK witness's latest cosigned checkpoint, once it is past ``size``."""
    for _ in range(300):
        note = (await _latest_checkpoint(channel)).checkpoint.signed_note
        if note and _size(note) > size:
            return note
        await asyncio.sleep(0.1)
    raise AssertionError(f"the UK node's witness cosigned nothing past tree size {size}")


async def _query(running: SignedDemo, title: str) -> None:
    s = next(x for x in scenarios(running.fed) if x.title.startswith(title))
    async with load_profile(running.fed.profiles[s.agency]).async_client() as client:
        outcome = await run_scenario(client, running.fed, s)
    assert outcome.result is not None, outcome.error


async def test_a_removed_node_refuses_everything_until_a_version_lists_it_again(
    running: SignedDemo, gb_channel: grpc.aio.Channel
) -> None:
    node, witness = pb_grpc.DataNodeStub(gb_channel), pb_grpc.WitnessStub(gb_channel)
    # Version 1: the UK node's witness cosigns the log (the gateway's loop asks it).
    await _query(running, "FBI asks the Canadian node")
    note = await _cosigned_past(gb_channel, 0)
    await _health_becomes(gb_channel, SERVING)

    running.publish(running.version(_without_gb(running.original), 2), signer=running.signer)
    for name in running.logs:
        await asyncio.to_thread(running.wait_said, name, "now version 2", 15)
    said = running.said("gb-node")
    assert "ALERT: federation file version 2 no longer lists node gb-node" in said
    assert "NODE_NOT_A_MEMBER" in said
    await _health_becomes(gb_channel, NOT_SERVING)
    assert await _health(gb_channel, "") == SERVING  # the process is up: a restart would not help

    calls = {
        "Execute": node.Execute(pb.ExecuteRequest(), timeout=5),
        "GetWitnessState": node.GetWitnessState(pb.GetWitnessStateRequest(), timeout=5),
        "ListOutbox": node.ListOutbox(pb.ListOutboxRequest(), timeout=5),
        "AddCheckpoint": witness.AddCheckpoint(
            pb.AddCheckpointRequest(old_size=0, checkpoint=pb.Checkpoint(signed_note=note)), timeout=5
        ),
        "GetLatestCosigned": witness.GetLatestCosigned(pb.GetLatestCosignedRequest(), timeout=5),
    }
    for name, call in calls.items():
        err = await _refusal(call)
        assert err.code == grpc.StatusCode.FAILED_PRECONDITION, (name, err)
        assert err.check_codes == ["NODE_NOT_A_MEMBER"], (name, err)
        assert err.rule_codes == ["NO_AGREEMENT"]
        assert "federation file version 2 no longer lists it" in err.message, err.message
        assert "its operator stops it" in err.message
    stream = node.ExecuteStream(pb.ExecuteRequest(), timeout=5)
    err = await _refusal(stream.read())
    assert err.check_codes == ["NODE_NOT_A_MEMBER"], err

    # Version 3 lists it again: it serves, and its witness cosigns the log's newer checkpoints.
    running.publish(running.version(running.original, 3), signer=running.signer)
    for name in running.logs:
        await asyncio.to_thread(running.wait_said, name, "now version 3", 15)
    assert "federation file version 3 lists node gb-node again: serving" in running.said("gb-node")
    await _health_becomes(gb_channel, SERVING)
    err = await _refusal(node.Execute(pb.ExecuteRequest(), timeout=5))
    assert "NODE_NOT_A_MEMBER" not in err.check_codes, err  # refused by admission: it checks again
    await _query(running, "FBI asks the Canadian node")  # the log grows: a new checkpoint to cosign
    await _cosigned_past(gb_channel, _size(note))
    for name in running.logs:
        assert "Traceback" not in running.said(name), running.said(name)
