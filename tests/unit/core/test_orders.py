"""Legal orders: signed by a registered authority, in date, covering the query."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from comity.core.bootstrap import FederationLayout, init_federation
from comity.core.dsse import PAYLOAD_QUERY, EnvelopeError, UnknownSigner, sign_envelope
from comity.core.errors import InvalidArgument, PermissionDenied
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.core.orders import (
    OrderVerifier,
    check_order_covers,
    envelope_digest,
    sign_order,
    verify_order,
)
from comity.core.target import target_facts
from comity.v1 import comity_pb2 as pb

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(
        tmp_path_factory.mktemp("fed"), gateway_port=1, countries={"US": 2, "CA": 3}, now=NOW
    )


@pytest.fixture(scope="module")
def fed(layout: FederationLayout) -> Federation:
    return Federation.load(layout.federation_file)


@pytest.fixture(scope="module")
def us_court(layout: FederationLayout) -> SigningKey:
    return SigningKey.load(layout.agencies["us.fbi"].authority_key, key_id="us.court.sdny")


def make_order(**kw: object) -> pb.LegalOrder:
    order = pb.LegalOrder(
        order_id="US-SDNY-2026-0142",
        issuing_authority="us.court.sdny",
        issuing_country="US",
        offence_code="US-18-1343",
        authorised_by="Hon. A. Judge",
        authorisation_type="judicial",
        selectors=[
            pb.Selector(type=pb.EMAIL, value="target@example.org"),
            pb.Selector(type=pb.PHONE, value="+15551234567"),
        ],
        categories=[pb.SUBSCRIBER, pb.TRAFFIC],
        max_records=50,
        target=target_facts(
            nationalities=["MX"], residences=["MX"], locations=["MX"], not_for_third_government=True
        ),
    )
    order.valid_from.FromDatetime(NOW - timedelta(days=1))
    order.valid_until.FromDatetime(NOW + timedelta(days=30))
    for name, value in kw.items():
        if name in ("valid_from", "valid_until"):
            getattr(order, name).FromDatetime(value)
        elif name == "clear":
            order.ClearField(str(value))
        else:
            setattr(order, name, value)
    return order


def test_a_signed_order_verifies_and_names_its_authority(fed: Federation, us_court: SigningKey) -> None:
    envelope = sign_order(make_order(), us_court)
    verified = verify_order(envelope, fed, now=NOW)
    assert verified.order_id == "US-SDNY-2026-0142"
    assert verified.authority.id == "us.court.sdny"
    assert verified.authority.kind == "judicial"
    assert verified.order.max_records == 50
    assert len(verified.digest) == 32


def test_the_window_edges_are_inclusive(fed: Federation, us_court: SigningKey) -> None:
    envelope = sign_order(make_order(), us_court)
    verify_order(envelope, fed, now=NOW - timedelta(days=1))
    verify_order(envelope, fed, now=NOW + timedelta(days=30))


def test_unknown_authority(fed: Federation) -> None:
    rogue = SigningKey.generate("us.court.rogue")
    with pytest.raises(UnknownSigner, match="does not list"):
        verify_order(sign_order(make_order(issuing_authority="us.court.rogue"), rogue), fed, now=NOW)


def test_unregistered_key_under_a_registered_authority_id(fed: Federation) -> None:
    impostor = SigningKey.generate("us.court.sdny")
    with pytest.raises(EnvelopeError, match="does not verify"):
        verify_order(sign_order(make_order(), impostor), fed, now=NOW)


def test_expired(fed: Federation, us_court: SigningKey) -> None:
    envelope = sign_order(make_order(), us_court)
    with pytest.raises(PermissionDenied, match="expired"):
        verify_order(envelope, fed, now=NOW + timedelta(days=31))


def test_not_yet_valid(fed: Federation, us_court: SigningKey) -> None:
    envelope = sign_order(make_order(valid_from=NOW + timedelta(hours=1)), us_court)
    with pytest.raises(PermissionDenied, match="not valid until"):
        verify_order(envelope, fed, now=NOW)


def test_tampered_payload(fed: Federation, us_court: SigningKey) -> None:
    envelope = sign_order(make_order(), us_court)
    tampered = make_order(max_records=5000).SerializeToString()
    envelope.payload = tampered
    with pytest.raises(EnvelopeError, match="does not verify"):
        verify_order(envelope, fed, now=NOW)


def test_wrong_payload_type(fed: Federation, us_court: SigningKey) -> None:
    envelope = sign_envelope(PAYLOAD_QUERY, make_order().SerializeToString(), us_court)
    with pytest.raises(InvalidArgument, match="payload type"):
        verify_order(envelope, fed, now=NOW)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"issuing_authority": "ca.court.onsc"}, "names authority 'ca.court.onsc' but is signed by"),
        ({"issuing_country": "CA"}, "registered for US"),
        ({"authorisation_type": "administrative"}, "registered as judicial"),
    ],
)
def test_an_authority_cannot_claim_another_identity(
    fed: Federation, us_court: SigningKey, change: dict[str, str], why: str
) -> None:
    with pytest.raises(PermissionDenied, match=re.escape(why)):
        verify_order(sign_order(make_order(**change), us_court), fed, now=NOW)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"order_id": ""}, "no order_id"),
        ({"clear": "selectors"}, "no selectors"),
        ({"clear": "categories"}, "data categories"),
        ({"clear": "valid_until"}, "valid_from and valid_until"),
        ({"valid_until": NOW - timedelta(days=2)}, "ends before it starts"),
    ],
)
def test_incomplete_orders_are_invalid(
    fed: Federation, us_court: SigningKey, change: dict[str, object], why: str
) -> None:
    with pytest.raises(InvalidArgument, match=why):
        verify_order(sign_order(make_order(**change), us_court), fed, now=NOW)


def test_a_payload_that_is_not_an_order(fed: Federation, us_court: SigningKey) -> None:
    from comity.core.dsse import PAYLOAD_ORDER

    envelope = sign_envelope(PAYLOAD_ORDER, b"\xff\xff\xff", us_court)
    with pytest.raises(InvalidArgument, match="not a LegalOrder"):
        verify_order(envelope, fed, now=NOW)


# ---------------------------------------------------------------------- the cache


def test_cached_orders_still_expire_and_tampering_misses_the_cache(
    fed: Federation, us_court: SigningKey
) -> None:
    verifier = OrderVerifier(fed, cache_size=1)
    envelope = sign_order(make_order(), us_court)
    first = verifier.verify(envelope, now=NOW)
    assert verifier.verify(envelope, now=NOW) is first
    with pytest.raises(PermissionDenied, match="expired"):
        verifier.verify(envelope, now=NOW + timedelta(days=40))
    forged = pb.Envelope()
    forged.CopyFrom(envelope)
    forged.signatures[0].sig = bytes(64)
    assert envelope_digest(forged) != envelope_digest(envelope)
    with pytest.raises(EnvelopeError):
        verifier.verify(forged, now=NOW)


# ---------------------------------------------------------------------- coverage


def sel(kind: int, value: str) -> pb.Selector:
    return pb.Selector(type=kind, value=value)  # type: ignore[arg-type]


def test_an_order_covers_its_own_selectors_and_categories() -> None:
    order = make_order()
    check_order_covers(order, [sel(pb.PHONE, "+15551234567")], [pb.TRAFFIC])
    check_order_covers(order, list(order.selectors), list(order.categories))


def test_an_uncovered_selector_is_named_by_position_and_type_never_value() -> None:
    with pytest.raises(PermissionDenied) as info:
        check_order_covers(
            make_order(),
            [sel(pb.EMAIL, "target@example.org"), sel(pb.EMAIL, "other@example.org")],
            [pb.SUBSCRIBER],
        )
    assert "selector #1 (EMAIL)" in info.value.message
    assert "other@example.org" not in info.value.diagnostics()


def test_the_same_value_under_another_type_is_not_covered() -> None:
    with pytest.raises(PermissionDenied, match=r"selector #0 \(USERNAME\)"):
        check_order_covers(make_order(), [sel(pb.USERNAME, "target@example.org")], [pb.SUBSCRIBER])


def test_an_uncovered_category() -> None:
    with pytest.raises(PermissionDenied, match="data category CONTENT"):
        check_order_covers(make_order(), [sel(pb.EMAIL, "target@example.org")], [pb.SUBSCRIBER, pb.CONTENT])


def test_selectors_compare_after_normalisation() -> None:
    def lower(s: pb.Selector) -> str:
        return s.value.strip().lower()

    query = [sel(pb.EMAIL, " Target@Example.ORG")]
    with pytest.raises(PermissionDenied):
        check_order_covers(make_order(), query, [pb.SUBSCRIBER])
    check_order_covers(make_order(), query, [pb.SUBSCRIBER], normalise=lower)


def test_an_order_selector_the_normaliser_refuses_is_reported_without_its_value() -> None:
    def strict(s: pb.Selector) -> str:
        if "@" not in s.value and s.type == pb.EMAIL:
            raise InvalidArgument(f"bad e-mail {s.value}")
        return s.value

    order = make_order()
    order.selectors.append(sel(pb.EMAIL, "not-an-email"))
    with pytest.raises(InvalidArgument) as info:
        check_order_covers(order, [sel(pb.EMAIL, "target@example.org")], [pb.SUBSCRIBER], normalise=strict)
    assert "selector #2 (EMAIL)" in info.value.message
    assert "not-an-email" not in info.value.message
