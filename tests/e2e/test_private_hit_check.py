"""Private hit checks end to end: SDK → gateway → node over real loopback servers.

The answers match a plain hit check on the same records; the node receives only commitments and
blinded elements; a stale epoch, a forged filter, a blinded element that is not the order's
selector, a wrong opening and a tampered evaluation are each refused with their check code.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import grpc
import pytest
from typer.testing import CliRunner

from comity.core import errors
from comity.core.keys import SigningKey
from comity.core.private_filter import sign_segment, verify_segment
from comity.nodes.synthetic import Person
from comity.sdk.cli.main import EXIT_REFUSED, app
from comity.sdk.client import AsyncClient, _error
from comity.sdk.demo.run import RunningFederation, Scenario, scenarios
from comity.sdk.demo.setup import OrderSpec
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec, Selector, read_order_file, sign_query
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")

_NOBODY = Person("Nobody Known", "US", "US", {pb.EMAIL: "nobody.known.anywhere@example.org"})  # type: ignore[dict-item]


def _hit_scenario(running: RunningFederation) -> Scenario:
    return next(
        s for s in scenarios(running.federation) if s.title.startswith("FBI asks the Canadian node whether")
    )


def _spec(running: RunningFederation, s: Scenario, *, kind: str, person: Person | None = None) -> QuerySpec:
    fed = running.federation
    person = person or s.person
    order = (
        s.order
        if person is s.person
        else OrderSpec(
            "US-SDNY-2026-0190",
            "us.fbi",
            s.order.offence_code,
            person,
            s.order.selector_types,
            s.order.categories,
        )
    )
    path = fed.orders.get(order.order_id) or fed.sign_order(order, now=datetime.now(UTC))
    return QuerySpec(
        target_node=s.node,
        selectors=[Selector(t.name, person.selectors[t]) for t in order.selector_types],
        categories=[c.lower() for c in s.categories],
        kind=kind,
        case_reference=s.case_reference,
        facts=s.facts,
        link_to_offence=s.link,
        legal_order=read_order_file(path),
        time_range=s.time_range,
    )


def _client(running: RunningFederation) -> AsyncClient:
    return load_profile(running.federation.profiles["us.fbi"]).async_client()


async def _submit(client: AsyncClient, request: pb.SubmitRequest) -> pb.QueryResult:
    try:
        return await client._stub.Submit(request, timeout=client.timeout, metadata=client.identity.bearer())
    except grpc.aio.AioRpcError as exc:
        raise _error(exc, client.target) from None


def _checks(err: errors.ComityError) -> set[str]:
    return {v.check for v in err.violations}


async def test_private_answers_match_the_plain_hit_check(running: RunningFederation) -> None:
    s = _hit_scenario(running)
    async with _client(running) as client:
        plain_hit = await client.query(_spec(running, s, kind="hit-check"))
        private_hit = await client.private_hit_check(_spec(running, s, kind="private-hit-check"))
        plain_miss = await client.query(_spec(running, s, kind="hit-check", person=_NOBODY))
        private_miss = await client.private_hit_check(
            _spec(running, s, kind="private-hit-check", person=_NOBODY)
        )
    assert plain_hit.hit and private_hit.hit
    assert [h.hit for h in private_hit.hits] == [True]
    assert not plain_miss.hit and not private_miss.hit
    assert private_hit.false_positive_rate == 1e-9
    # The log holds the decision (a private check, its order, one committed selector), the
    # node's allowance and the disclosure, which cannot say whether it hit.
    decision = json.loads(private_hit.receipt.entries[0].entry)
    assert decision["kind"] == "decision" and decision["facts"]["kind"] == "PRIVATE_HIT_CHECK"
    assert decision["order_id"] == s.order.order_id and len(decision["selector_commitments"]) == 1
    disclosed = json.loads(private_hit.receipt.entries[-1].entry)
    assert disclosed["kind"] == "disclosed" and disclosed["hit"] is False and disclosed["record_count"] == 0


async def test_the_node_receives_no_selector(running: RunningFederation) -> None:
    s = _hit_scenario(running)
    spec = _spec(running, s, kind="private-hit-check")
    async with _client(running) as client:
        filters = await client.private_filters(s.node)
        prepared, request = client._private_prepare(spec, filters)
    value = s.person.selectors[pb.EMAIL].encode()  # type: ignore[index]
    # What the gateway forwards to the node is the signed query as sent: no selector, no order.
    assert value not in request.signed_query.payload
    assert value.split(b"@")[0] not in request.signed_query.payload
    assert not prepared.query.selectors and not prepared.query.HasField("legal_order")
    # Blinding the same selector twice gives unrelated elements.
    async with _client(running) as client:
        again, _ = client._private_prepare(spec, filters)
    assert (
        again.query.private_selectors[0].blinded_element
        != prepared.query.private_selectors[0].blinded_element
    )


async def test_stale_epoch_refused_by_the_node(running: RunningFederation) -> None:
    s = _hit_scenario(running)
    async with _client(running) as client:
        prepared, request = client._private_prepare(
            _spec(running, s, kind="private-hit-check"), await client.private_filters(s.node)
        )
        prepared.query.filter_epoch -= 1
        request.signed_query.CopyFrom(sign_query(prepared.query, client.identity.signing_key))
        with pytest.raises(errors.FailedPrecondition) as caught:
            await _submit(client, request)
    assert "PRIVATE_FILTER_STALE" in _checks(caught.value)
    assert "download the current filters" in caught.value.message


async def test_forged_or_altered_filters_refused_by_the_sdk(running: RunningFederation) -> None:
    s = _hit_scenario(running)
    spec = _spec(running, s, kind="private-hit-check")
    async with _client(running) as client:
        filters = await client.private_filters(s.node)
        altered = pb.PrivateFilters()
        altered.CopyFrom(filters)
        altered.filters[0].data = bytes([filters.filters[0].data[0] ^ 0x80]) + filters.filters[0].data[1:]
        with pytest.raises(errors.Unauthenticated) as caught:
            await client.private_hit_check(spec, filters=altered)
        assert "PRIVATE_FILTER_INVALID" in _checks(caught.value)

        # A filter signed by a key that is not the node's: e.g. one claiming every selector hits.
        forger = SigningKey.generate(s.node)
        keys = {s.node: client._verifier.trust.response_keys(s.node).all()[-1]}
        genuine = verify_segment(filters.filters[0], node_id=s.node, keys=keys)
        forged = pb.PrivateFilters(epoch=filters.epoch)
        forged.filters.append(sign_segment(genuine.header, genuine.set, forger))
        with pytest.raises(errors.Unauthenticated) as caught:
            await client.private_hit_check(spec, filters=forged)
        assert "PRIVATE_FILTER_INVALID" in _checks(caught.value)


async def test_blinded_element_not_of_the_orders_selector_refused_at_the_gateway(
    running: RunningFederation,
) -> None:
    s = _hit_scenario(running)
    async with _client(running) as client:
        filters = await client.private_filters(s.node)
        # The requester signs a blinded element of another selector, but opens the order's one.
        other, _ = client._private_prepare(
            _spec(running, s, kind="private-hit-check", person=_NOBODY), filters
        )
        prepared, request = client._private_prepare(_spec(running, s, kind="private-hit-check"), filters)
        prepared.query.private_selectors[0].blinded_element = other.query.private_selectors[0].blinded_element
        request.signed_query.CopyFrom(sign_query(prepared.query, client.identity.signing_key))
        with pytest.raises(errors.PermissionDenied) as caught:
            await _submit(client, request)
        assert "PRIVATE_BLINDING" in _checks(caught.value)
        assert caught.value.receipt is not None  # the refusal is logged

        # An opening that does not open the signed commitment.
        prepared, request = client._private_prepare(_spec(running, s, kind="private-hit-check"), filters)
        request.private_openings.openings[0].salt = bytes(32)
        with pytest.raises(errors.InvalidArgument) as caught:
            await _submit(client, request)
        assert "PRIVATE_OPENING" in _checks(caught.value)

        # The order sent beside the query is not the one it names.
        prepared, request = client._private_prepare(_spec(running, s, kind="private-hit-check"), filters)
        request.private_openings.legal_order.CopyFrom(
            _spec(running, s, kind="private-hit-check", person=_NOBODY).legal_order
        )
        with pytest.raises(errors.InvalidArgument) as caught:
            await _submit(client, request)
        assert "PRIVATE_ORDER_REFERENCE" in _checks(caught.value)


async def test_tampered_evaluation_refused_by_the_sdk(running: RunningFederation) -> None:
    s = _hit_scenario(running)
    async with _client(running) as client:
        prepared, request = client._private_prepare(
            _spec(running, s, kind="private-hit-check"), await client.private_filters(s.node)
        )
        summary = await _submit(client, request)
        summary.private_evaluation.proof = (
            bytes([summary.private_evaluation.proof[0] ^ 1]) + (summary.private_evaluation.proof[1:])
        )
        with pytest.raises(errors.Unauthenticated) as caught:
            client._private_finish(prepared, request, summary)
    assert "PRIVATE_FILTER_INVALID" in _checks(caught.value)


async def test_cli_private_hit_check_as_the_guide_shows(running: RunningFederation) -> None:
    # docs/investigators.md, "Private hit checks": the same command with this federation's files.
    fed = running.federation
    s = _hit_scenario(running)
    order = fed.orders.get(s.order.order_id) or fed.sign_order(s.order, now=datetime.now(UTC))
    email = s.person.selectors[pb.EMAIL]  # type: ignore[index]

    def args(*selectors: str) -> list[str]:
        out = ["query", "--profile", str(fed.profiles["us.fbi"]), "--node", "ca-node"]
        out += ["--kind", "private-hit-check", "--order", str(order), "--category", "subscriber"]
        out += ["--case", s.case_reference, "--facts", s.facts, "--link", s.link]
        out += ["--since", "2025-01-01", "--until", "2025-12-31", "--json"]
        for selector in selectors:
            out += ["--selector", f"email:{selector}"]
        return out

    other = _NOBODY.selectors[pb.EMAIL]  # type: ignore[index]
    refused = await asyncio.to_thread(CliRunner().invoke, app, args(email, other), env={"COLUMNS": "250"})
    # The order names only the first selector: the gateway refuses the query, naming the rule.
    assert refused.exit_code == EXIT_REFUSED, refused.output
    assert "INDEPENDENT_AUTHORISATION" in refused.output
    result = await asyncio.to_thread(CliRunner().invoke, app, args(email), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["kind"] == "private-hit-check" and data["hit"] is True
    assert data["selectors"] == [{"type": "email", "value": email, "hit": True}]
    assert data["false_positive_rate"] == 1e-9
