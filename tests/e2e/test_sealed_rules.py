"""A rule whose reason would reveal something about the target stays sealed from the requester.

The gateway refuses a dual national of the responding country with the generic code; the
decision entry travels in the requester's receipt, so it names the generic code in clear and
keeps the real rule only behind a commitment whose opening stays beside the log. A legal
officer with the database still reads the real rule, and the decision still replays.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from comity.audit.events import DecisionEvent, decode_event
from comity.audit.store import LogStore
from comity.core.rpc import error_from_status
from comity.gateway.replay_run import replay_log
from comity.policy.bundle_store import BundleStore
from comity.sdk.cli.main import app
from comity.sdk.demo.run import RunningFederation, Scenario, scenarios
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec, Selector, build_query, read_order_file, sign_query
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")

SEALED = b"NO_TARGETING"


def _dual_national(running: RunningFederation) -> tuple[Scenario, pb.SubmitRequest]:
    fed = running.federation
    base = next(s for s in scenarios(fed) if s.title.startswith("FBI fetches"))
    s = replace(
        base,
        categories=("SUBSCRIBER",),
        order=replace(base.order, order_id=f"{base.order.order_id}-SEAL", nationalities=("US", "CA")),
    )
    order = read_order_file(fed.sign_order(s.order, now=datetime.now(UTC)))
    spec = QuerySpec(
        target_node=s.node,
        selectors=[Selector(t.name, s.person.selectors[t]) for t in s.order.selector_types],
        categories=["subscriber"],
        kind="fetch",
        case_reference="E2E-SEAL",
        facts=s.facts,
        link_to_offence=s.link,
        legal_order=order,
        time_range=s.time_range,
    )
    identity = load_profile(fed.profiles["us.fbi"]).identity()
    now = datetime.now(UTC)
    query = build_query(spec, investigator=identity.investigator, agency=identity.agency, now=now)
    return s, pb.SubmitRequest(signed_query=sign_query(query, identity.signing_key))


async def _raw_refusal(running: RunningFederation, request: pb.SubmitRequest) -> grpc.aio.AioRpcError:
    fed = running.federation
    token = load_profile(fed.profiles["us.fbi"]).token()
    creds = grpc.ssl_channel_credentials(root_certificates=fed.layout.gateway.ca_cert.read_bytes())
    async with grpc.aio.secure_channel(fed.layout.gateway.endpoint, creds) as channel:
        try:
            await pb_grpc.GatewayStub(channel).Submit(
                request, timeout=10, metadata=(("authorization", f"Bearer {token}"),)
            )
        except grpc.aio.AioRpcError as exc:
            return exc
    raise AssertionError("the gateway served a query about one of the responding country's nationals")


async def test_the_requester_cannot_learn_the_sealed_rule(running: RunningFederation, tmp_path: Path) -> None:
    _, request = _dual_national(running)
    exc = await _raw_refusal(running, request)
    assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
    # Nothing the requester receives names the rule: not the words, not the status details
    # (violations and the receipt with its log entries), not any other trailer.
    trailers = b"".join(
        v if isinstance(v, bytes) else str(v).encode() for _, v in (exc.trailing_metadata() or ())
    )
    assert SEALED not in (exc.details() or "").encode()
    assert SEALED not in trailers
    assert b"national" not in trailers.lower()
    err = error_from_status(exc.code(), exc.details() or "", exc.trailing_metadata())
    assert err.rule_codes == ["REFUSED"]
    assert "NO_TARGETING" not in err.diagnostics()
    receipt = err.receipt
    assert isinstance(receipt, pb.Receipt) and receipt.entries
    decisions = [decode_event(e.entry) for e in receipt.entries]
    decision = next(d for d in decisions if isinstance(d, DecisionEvent))
    assert decision.decision == "DENY"
    assert decision.rule_codes == ("REFUSED",)
    assert decision.rules_commitment  # the real rule is committed to, not in clear
    assert SEALED not in receipt.SerializeToString()

    # The legal officer with the log database opens it.
    fed = running.federation
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["audit", "show", "--db", str(fed.audit_db), "--order", decision.order_id, "--open"],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    assert "sealed rules: NO_TARGETING" in result.output
    plain = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["audit", "show", "--db", str(fed.audit_db), "--order", decision.order_id],
        env={"COLUMNS": "250"},
    )
    assert "NO_TARGETING" not in plain.output and "REFUSED" in plain.output

    # The sealed decision replays: the generic code in clear, the real rule behind it.
    store = LogStore.open(f"sqlite:///{fed.audit_db}", create=False)
    try:
        replayed = replay_log(store, bundles=BundleStore(fed.directory / "data" / "bundles"))
    finally:
        store.close()
    mine = [r for r in replayed if r.query_id == decision.query_id]
    assert len(mine) == 1 and mine[0].identical, mine[0].differences
    assert mine[0].logged_rules == ("NO_TARGETING",)
