"""An allowed query whose disclosure cannot be logged (the log fails mid-way) ends in a failure entry.

The log's storage is made to fail from the disclosure on, as a full disk would, on a SQLite and
on a PostgreSQL log. The caller is told why in words; the decision is in the log, no records are
returned, and once the log is writable again the gateway appends the failure entry it kept.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import pytest_asyncio
from sqlalchemy.exc import OperationalError

from comity.audit.store import LogStore
from comity.sdk.demo.run import RunningFederation, running_federation, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec, Selector, build_query, read_order_file, sign_query
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def federation(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoFederation]:
    fed = build_demo_federation(Path(tmp_path_factory.mktemp("incomplete")), people=20, seed=5)
    database, admin = "", ""
    if request.param == "postgresql":
        admin = request.getfixturevalue("postgres_url")
        database = f"comity_incomplete_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {database}")
        url = admin.rsplit("/", 1)[0] + "/" + database
        config = fed.gateway_config.read_text().replace(
            'url = "sqlite:///../data/audit.db"', f'url = "{url}"'
        )
        assert url in config
        fed.gateway_config.write_text(config)
    yield fed
    if database:
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def running(federation: DemoFederation) -> AsyncIterator[RunningFederation]:
    async with running_federation(federation) as r:
        yield r


def _allowed_query(running: RunningFederation) -> pb.SubmitRequest:
    fed = running.federation
    s = next(s for s in scenarios(fed) if s.title.startswith("FBI fetches"))
    order = fed.orders.get(s.order.order_id) or fed.sign_order(s.order, now=datetime.now(UTC))
    spec = QuerySpec(
        target_node=s.node,
        selectors=[Selector(t.name, s.person.selectors[t]) for t in s.order.selector_types],
        categories=["subscriber"],
        kind="fetch",
        case_reference="INCOMPLETE",
        facts=s.facts,
        link_to_offence=s.link,
        legal_order=read_order_file(order),
        time_range=s.time_range,
    )
    identity = load_profile(fed.profiles["us.fbi"]).identity()
    query = build_query(
        spec, investigator=identity.investigator, agency=identity.agency, now=datetime.now(UTC)
    )
    return pb.SubmitRequest(signed_query=sign_query(query, identity.signing_key))


class _FullDisk:
    """Fails every batch from the first disclosure on, until the disk has room again."""

    def __init__(self, store: LogStore) -> None:
        self.store, self.full = store, False
        self._append = store.append_batch

    def __call__(self, pending: Any, *args: Any, **kwargs: Any) -> Any:
        if any(b'"kind":"disclosed"' in p.data for p in pending):
            self.full = True
        if self.full:
            raise OperationalError("INSERT ...", {}, Exception("database or disk is full"))
        return self._append(pending, *args, **kwargs)


async def test_the_trail_of_an_allowed_query_ends_in_a_failure_once_the_log_is_back(
    running: RunningFederation, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed = running.federation
    ledger, pipeline = running.gateway.ledger, running.gateway.pipeline
    assert pipeline is not None
    disk = _FullDisk(ledger.log.store)
    monkeypatch.setattr(ledger.log.store, "append_batch", disk)
    request = _allowed_query(running)
    query_id = pb.Query.FromString(request.signed_query.payload).query_id
    creds = grpc.ssl_channel_credentials(root_certificates=fed.layout.gateway.ca_cert.read_bytes())
    token = load_profile(fed.profiles["us.fbi"]).token()
    async with grpc.aio.secure_channel(fed.layout.gateway.endpoint, creds) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await pb_grpc.GatewayStub(channel).Submit(
                request, timeout=15, metadata=(("authorization", f"Bearer {token}"),)
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    details = caught.value.details() or ""
    assert "disk is full" in details, details
    assert "OperationalError" not in details and "sqlite" not in details and "postgresql" not in details

    def kinds() -> list[str]:
        entries = [json.loads(e) for e in ledger.log.store.entries(0, ledger.log.store.tree_size())]
        # The gateway's own entries (the node's signed decision is logged beside them).
        mine = ("decision", "disclosed", "failed")
        return [e["kind"] for e in entries if e.get("query_id") == query_id and e["kind"] in mine]

    assert kinds() == ["decision"]
    disk.full = False  # room again: the next housekeeping pass appends the kept failure
    await pipeline.housekeeping()
    assert kinds() == ["decision", "failed"]
    entries = [json.loads(e) for e in ledger.log.store.entries(0, ledger.log.store.tree_size())]
    failed = next(e for e in entries if e["kind"] == "failed" and e["query_id"] == query_id)
    assert failed["reason"] == "DISCLOSURE_NOT_LOGGED"
    await pipeline.housekeeping()  # nothing more: exactly one failure entry
    assert kinds() == ["decision", "failed"]
