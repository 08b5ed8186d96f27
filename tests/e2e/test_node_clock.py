"""A node checks the time of what the gateway forwards by its own clock, and says when clocks differ.

Real servers on loopback: the gateway on the real clock, the nodes on a clock set ahead or
behind (injected, as a node machine's clock set wrong would be). The gateway accepts the query;
the node refuses it, and its words reach the investigator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from comity.core import errors
from comity.core.rpc import error_from_status
from comity.gateway.config import load_gateway_config
from comity.gateway.server import start_gateway
from comity.nodes.config import load_node_config
from comity.nodes.server import start_node
from comity.sdk.demo.run import scenario_spec, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.profile import load_profile
from comity.sdk.query import build_query, sign_query
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    return build_demo_federation(Path(tmp_path_factory.mktemp("clock")), people=20, seed=11)


@contextlib.asynccontextmanager
async def _serving(
    fed: DemoFederation, *, node_offset: timedelta, gateway_freshness: int = 300
) -> AsyncIterator[None]:
    """The gateway on the real clock (with its freshness window), the nodes ``node_offset`` off."""
    config = dataclasses.replace(load_gateway_config(fed.gateway_config), freshness_seconds=gateway_freshness)
    gateway = await start_gateway(config, start_witnessing=False)
    nodes = []
    try:
        for path in fed.node_configs.values():
            nodes.append(
                await start_node(load_node_config(path), clock=lambda: datetime.now(UTC) + node_offset)
            )
        gateway.start_background()
        yield
    finally:
        await gateway.handle.stop(1.0)
        for handle in nodes:
            await handle.stop(1.0)


async def _fetch(fed: DemoFederation, *, issued: timedelta = timedelta(0)) -> errors.ComityError:
    """Submit the FBI's fetch from the Canadian node, signed ``issued`` from now; the error it meets."""
    s = next(s for s in scenarios(fed) if s.title.startswith("FBI fetches"))
    spec = dataclasses.replace(
        scenario_spec(fed, s), categories=["subscriber"], kind="fetch", case_reference="CLOCKS"
    )
    profile = load_profile(fed.profiles["us.fbi"])
    identity = profile.identity()
    query = build_query(
        spec, investigator=identity.investigator, agency=identity.agency, now=datetime.now(UTC) + issued
    )
    request = pb.SubmitRequest(signed_query=sign_query(query, identity.signing_key))
    creds = grpc.ssl_channel_credentials(root_certificates=fed.layout.gateway.ca_cert.read_bytes())
    metadata = (("authorization", f"Bearer {profile.token()}"),)
    async with grpc.aio.secure_channel(fed.layout.gateway.endpoint, creds) as channel:
        try:
            await pb_grpc.GatewayStub(channel).Submit(request, timeout=30, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            return error_from_status(exc.code(), exc.details() or "", exc.trailing_metadata())
    raise AssertionError("the query was answered")


def _said(err: errors.ComityError) -> str:
    return " ".join([err.message, err.hint or "", *(v.message for v in err.violations)])


async def test_a_node_clock_ahead_sees_the_decision_as_old_and_says_the_clocks_differ(
    fed: DemoFederation,
) -> None:
    async with _serving(fed, node_offset=timedelta(minutes=10)):
        err = await _fetch(fed)
    assert isinstance(err, errors.FailedPrecondition), err
    assert [v.check for v in err.violations] == ["DECISION_STALE"]
    assert "node 'ca-node'" in err.message
    assert re.search(r"clocks of the gateway and node ca-node differ by about 60\d s", _said(err)), _said(err)


async def test_a_node_clock_behind_sees_the_decision_from_the_future_and_says_the_clocks_differ(
    fed: DemoFederation,
) -> None:
    async with _serving(fed, node_offset=-timedelta(minutes=2)):
        err = await _fetch(fed)
    assert isinstance(err, errors.FailedPrecondition), err
    assert [v.check for v in err.violations] == ["DECISION_FROM_FUTURE"]
    assert re.search(r"after node ca-node's clock", _said(err)), _said(err)
    assert re.search(r"differ by about 1[12]\d s", _said(err)), _said(err)


async def test_a_query_too_old_for_the_node_is_refused_there_though_the_gateway_took_it(
    fed: DemoFederation,
) -> None:
    # The gateway's window is an hour, the node's the default five minutes: a query signed ten
    # minutes ago passes the gateway, and the node, on the right clock, refuses it itself.
    async with _serving(fed, node_offset=timedelta(0), gateway_freshness=3600):
        err = await _fetch(fed, issued=-timedelta(minutes=10))
    assert isinstance(err, errors.Unauthenticated), err
    assert [v.check for v in err.violations] == ["QUERY_STALE"]
    assert "before node ca-node's clock" in _said(err)
    assert re.search(r"differ by about 60\d s", _said(err)), _said(err)


async def test_a_query_from_the_future_is_refused_by_a_node_behind_the_gateway(
    fed: DemoFederation,
) -> None:
    # Signed 20 s ahead (inside the gateway's allowance for skew) and met by a node 20 s behind
    # the gateway: the decision is within the node's allowance, the query 40 s in its future.
    async with _serving(fed, node_offset=-timedelta(seconds=20)):
        err = await _fetch(fed, issued=timedelta(seconds=20))
    assert isinstance(err, errors.Unauthenticated), err
    assert [v.check for v in err.violations] == ["QUERY_FROM_FUTURE"]
    assert re.search(r"\b(39|40|41) s after node ca-node's clock", _said(err)), _said(err)
