"""The gateway's checks on a signed query: signer, identity, freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from comity.core.bootstrap import FederationLayout, init_federation, mint_token
from comity.core.dsse import PAYLOAD_ORDER, PAYLOAD_QUERY, EnvelopeError, payload_digest, sign_envelope
from comity.core.errors import InvalidArgument, Unauthenticated
from comity.core.federation import Federation
from comity.core.issuer import load_issuer_key
from comity.core.keys import SigningKey
from comity.core.queries import StaleQuery, verify_signed_query
from comity.core.tokens import TokenVerifier, VerifiedToken
from comity.v1 import comity_pb2 as pb

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
AGENT = "us.fbi/agent-1"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(
        tmp_path_factory.mktemp("fed"), gateway_port=1, countries={"US": 2, "CA": 3}, now=NOW
    )


@pytest.fixture(scope="module")
def fed(layout: FederationLayout) -> Federation:
    return Federation.load(layout.federation_file)


@pytest.fixture(scope="module")
def token(layout: FederationLayout, fed: Federation) -> VerifiedToken:
    files = layout.agencies["us.fbi"]
    jwt = mint_token(
        load_issuer_key(files.issuer_key), issuer=files.issuer, subject=AGENT, audience=files.audience,
        ttl=timedelta(minutes=30), now=NOW,
    )  # fmt: skip
    return TokenVerifier(fed, audience=files.audience).verify(jwt, now=NOW)


@pytest.fixture(scope="module")
def agent_key(layout: FederationLayout) -> SigningKey:
    return SigningKey.load(layout.agencies["us.fbi"].investigator_key, key_id=AGENT)


def query(issued_at: datetime = NOW, **kw: str) -> pb.Query:
    fields = {
        "query_id": "q-1",
        "requesting_agency": "us.fbi",
        "investigator": AGENT,
        "target_node": "ca-node",
    }
    fields.update(kw)
    q = pb.Query(**fields, kind=pb.FETCH)  # type: ignore[arg-type]
    q.issued_at.FromDatetime(issued_at)
    return q


def signed(q: pb.Query, key: SigningKey) -> pb.Envelope:
    return sign_envelope(PAYLOAD_QUERY, q.SerializeToString(), key)


def test_a_fresh_query_signed_by_the_token_subject_verifies(
    fed: Federation, token: VerifiedToken, agent_key: SigningKey
) -> None:
    envelope = signed(query(), agent_key)
    v = verify_signed_query(envelope, token=token, federation=fed, now=NOW + timedelta(minutes=1))
    assert v.query.query_id == v.query_id == "q-1"
    assert v.digest == payload_digest(envelope)
    assert v.signer.key_id == AGENT
    assert v.envelope is envelope
    assert v.issued_at == NOW


def test_signature_by_an_unregistered_key(fed: Federation, token: VerifiedToken) -> None:
    forged = signed(query(), SigningKey.generate(AGENT))
    with pytest.raises(EnvelopeError, match="does not verify"):
        verify_signed_query(forged, token=token, federation=fed, now=NOW)


def test_signature_by_another_registered_investigator(
    layout: FederationLayout, fed: Federation, token: VerifiedToken
) -> None:
    other = SigningKey.load(layout.agencies["ca.rcmp"].investigator_key, key_id="ca.rcmp/constable-1")
    with pytest.raises(Unauthenticated, match="not signed by the key registered for"):
        verify_signed_query(signed(query(), other), token=token, federation=fed, now=NOW)


def test_tampered_payload(fed: Federation, token: VerifiedToken, agent_key: SigningKey) -> None:
    envelope = signed(query(), agent_key)
    envelope.payload = query(target_node="us-node").SerializeToString()
    with pytest.raises(EnvelopeError, match="does not verify"):
        verify_signed_query(envelope, token=token, federation=fed, now=NOW)


def test_an_order_cannot_pass_for_a_query(
    fed: Federation, token: VerifiedToken, agent_key: SigningKey
) -> None:
    envelope = sign_envelope(PAYLOAD_ORDER, query().SerializeToString(), agent_key)
    with pytest.raises(InvalidArgument, match="payload type"):
        verify_signed_query(envelope, token=token, federation=fed, now=NOW)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"investigator": "us.fbi/agent-2"}, "names investigator"),
        ({"requesting_agency": "ca.rcmp"}, "names agency"),
    ],
)
def test_the_query_must_speak_for_the_token(
    fed: Federation, token: VerifiedToken, agent_key: SigningKey, change: dict[str, str], why: str
) -> None:
    with pytest.raises(Unauthenticated, match=why):
        verify_signed_query(signed(query(**change), agent_key), token=token, federation=fed, now=NOW)


def test_an_empty_query_id(fed: Federation, token: VerifiedToken, agent_key: SigningKey) -> None:
    with pytest.raises(InvalidArgument, match="query_id"):
        verify_signed_query(signed(query(query_id=""), agent_key), token=token, federation=fed, now=NOW)


@pytest.mark.parametrize(
    ("issued", "why"),
    [
        (NOW - timedelta(minutes=6), "360 s before the gateway's clock: more than"),
        (NOW + timedelta(minutes=1), "60 s after the gateway's clock"),
    ],
)
def test_stale_or_future_issued_at(
    fed: Federation, token: VerifiedToken, agent_key: SigningKey, issued: datetime, why: str
) -> None:
    with pytest.raises(StaleQuery, match=why):
        verify_signed_query(signed(query(issued), agent_key), token=token, federation=fed, now=NOW)


def test_freshness_edges_allow_clock_skew(
    fed: Federation, token: VerifiedToken, agent_key: SigningKey
) -> None:
    for issued in (NOW - timedelta(minutes=5, seconds=20), NOW + timedelta(seconds=20)):
        verify_signed_query(signed(query(issued), agent_key), token=token, federation=fed, now=NOW)


def test_missing_issued_at(fed: Federation, token: VerifiedToken, agent_key: SigningKey) -> None:
    q = query()
    q.ClearField("issued_at")
    with pytest.raises(InvalidArgument, match="issued_at is missing"):
        verify_signed_query(signed(q, agent_key), token=token, federation=fed, now=NOW)
