"""A table of wrong queries: every refusal answered and logged with its rule ids and check codes.

Each case changes one good query of the demo (or two, for combinations) and states the status,
the check codes and rules the requester must get, and the entry the log must hold: a
``refused`` entry for input that stops early, a ``decision`` entry naming every failing check
and rule for a query well-formed enough for policy to run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from comity.core import errors
from comity.core.dsse import PAYLOAD_ORDER, PAYLOAD_QUERY, sign_envelope
from comity.core.keys import SigningKey
from comity.core.rpc import error_from_status
from comity.sdk.demo.run import RunningFederation, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec, Selector, build_query, read_order_file, sign_query
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    """The demo federation, with room for the whole table's refusals in one rate-limit window."""
    fed = build_demo_federation(Path(tmp_path_factory.mktemp("table")), people=40, seed=7)
    with fed.gateway_config.open("a") as config:
        config.write("\n[limits]\nrefusals_per_investigator = 1000\nrefusals_per_agency = 1000\n")
    return fed


Change = Callable[[RunningFederation, pb.Query], pb.SubmitRequest | pb.Query]


@dataclass(frozen=True)
class Case:
    """One wrong query: what changes, and what the answer and the log must say."""

    name: str
    change: Change
    status: grpc.StatusCode
    checks: list[tuple[str, str]]
    kind: str  # the log entry: "refused" or "decision"
    policy_rules: set[str] = field(default_factory=set)  # rules the policy must name as well


def _good(running: RunningFederation) -> pb.Query:
    fed = running.federation
    s = next(s for s in scenarios(fed) if s.title.startswith("FBI fetches"))
    order = fed.orders.get(s.order.order_id) or fed.sign_order(s.order, now=datetime.now(UTC))
    spec = QuerySpec(
        target_node=s.node,
        selectors=[Selector(t.name, s.person.selectors[t]) for t in s.order.selector_types],
        categories=["subscriber"],
        kind="fetch",
        case_reference="TABLE",
        facts=s.facts,
        link_to_offence=s.link,
        legal_order=read_order_file(order),
        time_range=s.time_range,
        query_id=str(uuid.uuid4()),
    )
    identity = load_profile(fed.profiles["us.fbi"]).identity()
    now = datetime.now(UTC)
    return build_query(spec, investigator=identity.investigator, agency=identity.agency, now=now)


def _agent_key(running: RunningFederation) -> SigningKey:
    return load_profile(running.federation.profiles["us.fbi"]).identity().signing_key


def _reorder(running: RunningFederation, query: pb.Query, edit: Callable[[pb.LegalOrder], None]) -> pb.Query:
    """Re-sign the query's order, changed by ``edit``, with the US court's own key."""
    agency = running.federation.layout.agencies["us.fbi"]
    order = pb.LegalOrder.FromString(query.legal_order.payload)
    edit(order)
    key = SigningKey.load(agency.authority_key, key_id=agency.authority)
    query.legal_order.CopyFrom(sign_envelope(PAYLOAD_ORDER, order.SerializeToString(), key))
    return query


def _at(delta: timedelta) -> Callable[[pb.Query], None]:
    def edit(q: pb.Query) -> None:
        q.issued_at.FromDatetime(datetime.now(UTC) + delta)

    return edit


def _q(edit: Callable[[pb.Query], None]) -> Change:
    def change(_running: RunningFederation, q: pb.Query) -> pb.Query:
        edit(q)
        return q

    return change


def _tampered(running: RunningFederation, q: pb.Query) -> pb.SubmitRequest:
    request = pb.SubmitRequest(signed_query=sign_query(q, _agent_key(running)))
    q.max_records = 99_999
    request.signed_query.payload = q.SerializeToString()
    return request


def _garbage(running: RunningFederation, _q: pb.Query) -> pb.SubmitRequest:
    garbage = sign_envelope(PAYLOAD_QUERY, b"\xff\xfe garbage", _agent_key(running))
    return pb.SubmitRequest(signed_query=garbage)


def _forged_order(_running: RunningFederation, q: pb.Query) -> pb.Query:
    q.legal_order.signatures[0].sig = bytes(64)
    return q


def _wildcard(q: pb.Query) -> None:
    q.selectors[0].value = "*@example.org"


def _uncovered(q: pb.Query) -> None:
    q.selectors[0].value = "someone.else@example.org"


def _expired(o: pb.LegalOrder) -> None:
    o.valid_from.FromDatetime(datetime.now(UTC) - timedelta(days=60))
    o.valid_until.FromDatetime(datetime.now(UTC) - timedelta(days=1))


def _not_yet(o: pb.LegalOrder) -> None:
    o.valid_from.FromDatetime(datetime.now(UTC) + timedelta(days=1))
    o.valid_until.FromDatetime(datetime.now(UTC) + timedelta(days=30))


def _two_years(o: pb.LegalOrder) -> None:
    o.offence_code = "18 USC 875(d)"  # a two-year maximum in the US catalogue


AUTH = "INDEPENDENT_AUTHORISATION"
ID = "AUDIT_FIELDS"
INVALID, DENIED = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED
UNAUTH = grpc.StatusCode.UNAUTHENTICATED

CASES = [
    # --- malformed or unauthenticated: stops at the first failing check, a `refused` entry
    Case("no signed query", lambda r, q: pb.SubmitRequest(), INVALID, [("QUERY_MISSING", ID)], "refused"),
    Case("tampered payload", _tampered, UNAUTH, [("QUERY_SIGNATURE", ID)], "refused"),
    Case("signed garbage", _garbage, INVALID, [("QUERY_DECODE", ID)], "refused"),
    Case("other investigator", _q(lambda q: setattr(q, "investigator", "us.fbi/agent-9")), UNAUTH,
         [("QUERY_IDENTITY", ID)], "refused"),
    Case("empty query id", _q(lambda q: setattr(q, "query_id", "")), INVALID, [("QUERY_ID", ID)], "refused"),
    Case("no issued_at", _q(lambda q: q.ClearField("issued_at")), INVALID,
         [("QUERY_ISSUED_AT", ID)], "refused"),
    Case("stale", _q(_at(-timedelta(hours=1))), UNAUTH, [("QUERY_STALE", ID)], "refused"),
    Case("from the future", _q(_at(timedelta(hours=1))), UNAUTH, [("QUERY_FROM_FUTURE", ID)], "refused"),
    Case("no target node", _q(lambda q: setattr(q, "target_node", "")), INVALID,
         [("TARGET_NODE_MISSING", ID)], "refused"),
    Case("unknown node", _q(lambda q: setattr(q, "target_node", "mx-node")), grpc.StatusCode.NOT_FOUND,
         [("TARGET_NODE_UNKNOWN", ID)], "refused"),
    Case("no kind", _q(lambda q: setattr(q, "kind", pb.QUERY_KIND_UNSPECIFIED)), INVALID,
         [("QUERY_KIND", "TWO_STEP")], "refused"),
    Case("too many selectors", _q(lambda q: q.selectors.extend([q.selectors[0]] * 16)), INVALID,
         [("SELECTOR_COUNT", "PARTICULARITY")], "refused"),
    Case("forged order", _forged_order, UNAUTH, [("ORDER_SIGNATURE", AUTH)], "refused"),
    # --- well-formed enough: policy runs, every failing check and rule is named, a `decision` entry
    Case("wildcard selector", _q(_wildcard), INVALID, [("SELECTOR_PATTERN", "PARTICULARITY")], "decision",
         {"PARTICULARITY"}),
    Case("unknown selector type", _q(lambda q: setattr(q.selectors[0], "type", 77)), INVALID,
         [("SELECTOR_TYPE", "PARTICULARITY")], "decision", {"PARTICULARITY"}),
    Case("no selectors", _q(lambda q: q.ClearField("selectors")), INVALID,
         [("SELECTORS_MISSING", "PARTICULARITY")], "decision", {"PARTICULARITY"}),
    Case("no categories", _q(lambda q: q.ClearField("categories")), INVALID,
         [("CATEGORIES_INVALID", "DATA_CATEGORY_TIERS")], "decision"),
    Case("no order", _q(lambda q: q.ClearField("legal_order")), DENIED, [("ORDER_MISSING", AUTH)], "decision",
         {AUTH}),
    Case("expired order", lambda r, q: _reorder(r, q, _expired), DENIED, [("ORDER_EXPIRED", AUTH)],
         "decision", {AUTH}),
    Case("order not yet valid", lambda r, q: _reorder(r, q, _not_yet), DENIED,
         [("ORDER_NOT_YET_VALID", AUTH)], "decision", {AUTH}),
    Case("uncovered category", _q(lambda q: q.categories.append(pb.CONTENT)), DENIED,
         [("ORDER_SCOPE_CATEGORY", AUTH)], "decision", {AUTH}),
    Case("order claims another authority", lambda r, q: _reorder(
        r, q, lambda o: setattr(o, "issuing_authority", "ca.court.onsc")), DENIED,
         [("ORDER_AUTHORITY", AUTH)], "decision"),
    Case("uncovered selector and a two-year offence",
         lambda r, q: _reorder(r, _q(_uncovered)(r, q), _two_years),  # type: ignore[arg-type]
         DENIED, [("ORDER_SCOPE_SELECTOR", AUTH)], "decision", {AUTH, "SERIOUS_CRIME"}),
    Case("wildcard selector and an expired order",
         lambda r, q: _reorder(r, _q(_wildcard)(r, q), _expired),  # type: ignore[arg-type]
         INVALID, [("SELECTOR_PATTERN", "PARTICULARITY"), ("ORDER_EXPIRED", AUTH)], "decision",
         {"PARTICULARITY", AUTH}),
    Case("expired order for a two-year offence, content not covered",
         lambda r, q: _reorder(r, _q(lambda x: x.categories.append(pb.CONTENT))(r, q),  # type: ignore[arg-type]
                               lambda o: (_expired(o), _two_years(o))),
         DENIED, [("ORDER_EXPIRED", AUTH), ("ORDER_SCOPE_CATEGORY", AUTH)], "decision",
         {AUTH, "SERIOUS_CRIME"}),
]  # fmt: skip


async def _submit(running: RunningFederation, request: pb.SubmitRequest) -> errors.ComityError:
    fed = running.federation
    creds = grpc.ssl_channel_credentials(root_certificates=fed.layout.gateway.ca_cert.read_bytes())
    token = load_profile(fed.profiles["us.fbi"]).token()
    async with grpc.aio.secure_channel(fed.layout.gateway.endpoint, creds) as channel:
        try:
            await pb_grpc.GatewayStub(channel).Submit(
                request, timeout=10, metadata=(("authorization", f"Bearer {token}"),)
            )
        except grpc.aio.AioRpcError as exc:
            err = error_from_status(exc.code(), exc.details() or "", exc.trailing_metadata())
            err.status = exc.code()  # type: ignore[attr-defined]
            return err
    raise AssertionError("the gateway accepted the request")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_every_refusal_is_answered_and_logged_with_its_rules(
    running: RunningFederation, case: Case
) -> None:
    changed = case.change(running, _good(running))
    request = (
        changed
        if isinstance(changed, pb.SubmitRequest)
        else pb.SubmitRequest(signed_query=sign_query(changed, _agent_key(running)))
    )
    err = await _submit(running, request)
    assert err.status == case.status, err.diagnostics()  # type: ignore[attr-defined]
    answered = list(zip(err.check_codes, err.rule_codes, strict=True))
    assert answered[: len(case.checks)] == case.checks, err.diagnostics()
    assert case.policy_rules <= set(err.rule_codes), err.diagnostics()
    assert "Error" not in err.message and "sqlite" not in err.message.lower()
    # The receipt proves the entry; the entry names every check and rule the answer named.
    assert isinstance(err.receipt, pb.Receipt)
    entry = json.loads(err.receipt.entries[0].entry)
    assert entry["kind"] == case.kind
    assert [tuple(c) for c in entry["checks"]] == case.checks
    if case.kind == "decision":
        assert entry["decision"] == "DENY"
        assert case.policy_rules <= set(entry["rule_codes"])
        if ("ORDER_SCOPE_SELECTOR", AUTH) in case.checks:
            assert entry["facts"]["order_covers_selectors"] is False
        assert entry["justification_commitment"] and entry["case_reference"] == "TABLE"
    else:
        assert entry["reason_code"] == case.status.name
