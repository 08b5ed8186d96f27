"""Bad input at the gateway, end to end: the right status, a message that names the problem."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from comity.core import errors
from comity.core.rpc import error_from_status
from comity.sdk.demo.run import RunningFederation, scenarios
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec, Selector, build_query, read_order_file, sign_query
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _spec(running: RunningFederation, **changes: object) -> QuerySpec:
    fed = running.federation
    s = next(s for s in scenarios(fed) if s.title.startswith("FBI fetches"))
    order = fed.orders.get(s.order.order_id) or fed.sign_order(s.order, now=datetime.now(UTC))
    values: dict[str, object] = {
        "target_node": s.node,
        "selectors": [Selector(t.name, s.person.selectors[t]) for t in s.order.selector_types],
        "categories": ["subscriber"],
        "kind": "fetch",
        "case_reference": "E2E",
        "facts": s.facts,
        "link_to_offence": s.link,
        "legal_order": read_order_file(order),
        "time_range": s.time_range,
    }
    values.update(changes)
    return QuerySpec(**values)  # type: ignore[arg-type]


async def _submit(
    running: RunningFederation, request: pb.SubmitRequest, token: str | None
) -> errors.ComityError:
    fed = running.federation
    creds = grpc.ssl_channel_credentials(root_certificates=fed.layout.gateway.ca_cert.read_bytes())
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    async with grpc.aio.secure_channel(fed.layout.gateway.endpoint, creds) as channel:
        try:
            await pb_grpc.GatewayStub(channel).Submit(request, timeout=10, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            return error_from_status(exc.code(), exc.details() or "", exc.trailing_metadata())
    raise AssertionError("the gateway accepted the request")


def _signed(running: RunningFederation, spec: QuerySpec, *, now: datetime | None = None) -> pb.SubmitRequest:
    profile = load_profile(running.federation.profiles["us.fbi"])
    identity = profile.identity()
    query = build_query(
        spec, investigator=identity.investigator, agency=identity.agency, now=now or datetime.now(UTC)
    )
    return pb.SubmitRequest(signed_query=sign_query(query, identity.signing_key))


def _token(running: RunningFederation) -> str:
    return load_profile(running.federation.profiles["us.fbi"]).token()


async def test_unknown_node_is_not_found_and_named(running: RunningFederation) -> None:
    err = await _submit(running, _signed(running, _spec(running, target_node="mx-node")), _token(running))
    assert isinstance(err, errors.NotFound)
    assert "mx-node" in err.message


@pytest.mark.parametrize(
    "selector",
    [Selector("email", ""), Selector("email", "not an email"), Selector("ip_address", "999.1.1.1")],
)
async def test_malformed_selector_is_invalid_argument_naming_it(
    running: RunningFederation, selector: Selector
) -> None:
    err = await _submit(running, _signed(running, _spec(running, selectors=[selector])), _token(running))
    assert isinstance(err, errors.InvalidArgument)
    assert "selector" in err.message.lower()


async def test_no_selectors_is_invalid_argument(running: RunningFederation) -> None:
    err = await _submit(running, _signed(running, _spec(running, selectors=[])), _token(running))
    assert isinstance(err, errors.InvalidArgument)
    assert "selectors" in err.message


async def test_oversize_message_is_resource_exhausted(running: RunningFederation) -> None:
    spec = _spec(running, facts="x" * (5 * 1024 * 1024))
    err = await _submit(running, _signed(running, spec), _token(running))
    assert isinstance(err, errors.ResourceExhausted)


async def test_missing_token_is_unauthenticated(running: RunningFederation) -> None:
    err = await _submit(running, _signed(running, _spec(running)), None)
    assert isinstance(err, errors.Unauthenticated)


async def test_tampered_query_is_unauthenticated(running: RunningFederation) -> None:
    request = _signed(running, _spec(running))
    query = pb.Query.FromString(request.signed_query.payload)
    query.max_records = 100_000
    request.signed_query.payload = query.SerializeToString()
    err = await _submit(running, request, _token(running))
    assert isinstance(err, errors.Unauthenticated)


async def test_replayed_query_id_is_refused(running: RunningFederation) -> None:
    request = _signed(running, _spec(running))
    creds = grpc.ssl_channel_credentials(
        root_certificates=running.federation.layout.gateway.ca_cert.read_bytes()
    )
    async with grpc.aio.secure_channel(running.federation.layout.gateway.endpoint, creds) as channel:
        stub = pb_grpc.GatewayStub(channel)
        await stub.Submit(request, timeout=10, metadata=(("authorization", f"Bearer {_token(running)}"),))
    err = await _submit(running, request, _token(running))
    assert isinstance(err, errors.AlreadyExists | errors.PermissionDenied)
    assert "query" in err.message.lower()


async def test_stale_query_is_refused(running: RunningFederation) -> None:
    request = _signed(running, _spec(running), now=datetime.now(UTC) - timedelta(hours=1))
    err = await _submit(running, request, _token(running))
    assert isinstance(err, errors.Unauthenticated)


async def test_refusal_before_policy_carries_a_verifiable_receipt(running: RunningFederation) -> None:
    from comity.core.dsse import payload_digest
    from comity.core.federation import Federation
    from comity.sdk.receipts import FederationTrust, ReceiptInvalid, verify_refusal

    request = _signed(running, _spec(running), now=datetime.now(UTC) - timedelta(hours=1))
    err = await _submit(running, request, _token(running))
    assert isinstance(err.receipt, pb.Receipt)
    assert err.check_codes == ["QUERY_STALE"] and err.rule_codes == ["AUDIT_FIELDS"]
    trust = FederationTrust(Federation.load(running.federation.layout.federation_file))
    verified = verify_refusal(err.receipt, trust, query_digest=payload_digest(request.signed_query))
    refusal = verified.entries.refusal
    assert verified.outcome == "refused" and refusal is not None and refusal.reason_code == err.code.name
    assert refusal.checks == (("QUERY_STALE", "AUDIT_FIELDS"),)
    with pytest.raises(ReceiptInvalid):
        verify_refusal(err.receipt, trust, query_digest=b"\0" * 32)


async def test_an_uncovered_selector_is_decided_and_its_receipt_names_the_check(
    running: RunningFederation,
) -> None:
    from comity.core.dsse import payload_digest
    from comity.core.federation import Federation
    from comity.sdk.receipts import FederationTrust, verify_refusal

    request = _signed(running, _spec(running, selectors=[Selector("email", "uncovered@example.org")]))
    err = await _submit(running, request, _token(running))
    assert isinstance(err, errors.PermissionDenied)
    assert err.check_codes[0] == "ORDER_SCOPE_SELECTOR"
    assert err.rule_codes[0] == "INDEPENDENT_AUTHORISATION"
    assert "uncovered@example.org" not in err.diagnostics()
    trust = FederationTrust(Federation.load(running.federation.layout.federation_file))
    assert isinstance(err.receipt, pb.Receipt)
    verified = verify_refusal(err.receipt, trust, query_digest=payload_digest(request.signed_query))
    decision = verified.entries.decision
    assert verified.outcome == "denied" and decision is not None and decision.decision == "DENY"
    assert ("ORDER_SCOPE_SELECTOR", "INDEPENDENT_AUTHORISATION") in decision.checks
