"""A flood of signed garbage from a registered investigator: rate-limited, and a bounded trail.

The gateway runs with small limits (5 refusals per investigator, 8 per agency, in a window
longer than the test), on a SQLite and on a PostgreSQL log. Past the investigator's limit
every request is RESOURCE_EXHAUSTED and not logged on its own; the window leaves one
``throttled`` entry with the count and a Merkle commitment to the refused requests' digests.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
import pytest_asyncio

from comity.audit.events import ThrottledEvent, decode_event
from comity.audit.tree import CompactRange
from comity.core.dsse import PAYLOAD_QUERY, sign_envelope
from comity.core.rpc import error_from_status
from comity.gateway.ledger import Ledger
from comity.sdk.demo.run import RunningFederation, running_federation
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.profile import load_profile
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")

PER_INVESTIGATOR = 5
FLOOD = 40


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def federation(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoFederation]:
    fed = build_demo_federation(Path(tmp_path_factory.mktemp("flood")), people=10, seed=3)
    config = fed.gateway_config.read_text()
    database = ""
    admin = ""
    if request.param == "postgresql":
        admin = request.getfixturevalue("postgres_url")
        database = f"comity_flood_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {database}")
        url = admin.rsplit("/", 1)[0] + "/" + database
        config = config.replace('url = "sqlite:///../data/audit.db"', f'url = "{url}"')
        assert url in config
    config += (
        f"\n[limits]\nrefusal_window_seconds = 86400\nrefusals_per_investigator = {PER_INVESTIGATOR}\n"
        "refusals_per_agency = 8\n"
    )
    fed.gateway_config.write_text(config)
    yield fed
    if database:
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def running(federation: DemoFederation) -> AsyncIterator[RunningFederation]:
    async with running_federation(federation) as r:
        yield r


async def test_a_flood_of_signed_garbage_leaves_a_bounded_trail(running: RunningFederation) -> None:
    fed = running.federation
    profile = load_profile(fed.profiles["us.fbi"])
    identity, token = profile.identity(), profile.token()
    key = identity.signing_key
    ledger: Ledger = running.gateway.ledger
    before = await ledger.tree_size()
    creds = grpc.ssl_channel_credentials(root_certificates=fed.layout.gateway.ca_cert.read_bytes())
    codes: list[grpc.StatusCode] = []
    checks: list[list[str]] = []
    digests: list[bytes] = []
    async with grpc.aio.secure_channel(fed.layout.gateway.endpoint, creds) as channel:
        stub = pb_grpc.GatewayStub(channel)
        for i in range(FLOOD):
            garbage = sign_envelope(PAYLOAD_QUERY, b"\xff garbage %d" % i, key)
            digests.append(hashlib.sha256(garbage.payload).digest())
            try:
                await stub.Submit(
                    pb.SubmitRequest(signed_query=garbage),
                    timeout=10,
                    metadata=(("authorization", f"Bearer {token}"),),
                )
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
                checks.append(error_from_status(exc.code(), "", exc.trailing_metadata()).check_codes)
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * PER_INVESTIGATOR + [
        grpc.StatusCode.RESOURCE_EXHAUSTED
    ] * (FLOOD - PER_INVESTIGATOR)
    assert checks[0] == ["QUERY_DECODE"] and checks[-1] == ["RATE_LIMITED_INVESTIGATOR"]
    # Only the refusals inside the limit are entries of their own.
    assert await ledger.tree_size() - before == PER_INVESTIGATOR

    # The window's aggregate entry: written when the window ends, here when the gateway stops.
    assert running.gateway.pipeline is not None
    await running.gateway.pipeline.housekeeping(final=True)
    entries = await ledger.entries(before, await ledger.tree_size())
    assert len(entries) == PER_INVESTIGATOR + 1
    refused = [json.loads(e) for e in entries[:PER_INVESTIGATOR]]
    assert all(r["kind"] == "refused" and r["checks"] == [["QUERY_DECODE", "AUDIT_FIELDS"]] for r in refused)
    throttled = decode_event(entries[-1])
    assert isinstance(throttled, ThrottledEvent)
    assert throttled.count == FLOOD - PER_INVESTIGATOR
    assert throttled.by_requester == ((identity.investigator, "us.fbi", FLOOD - PER_INVESTIGATOR),)
    tree = CompactRange()
    for digest in digests[PER_INVESTIGATOR:]:
        tree.append(hashlib.sha256(b"\x00" + digest).digest())
    assert throttled.requests_root == tree.root().hex()
