"""The target facts of a legal order: required, sets of assigned ISO codes, never defaulted."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from comity.core import refusals
from comity.core.bootstrap import FederationLayout, init_federation
from comity.core.errors import ComityError, FailedPrecondition, InvalidArgument
from comity.core.federation import Federation
from comity.core.iso3166 import ALPHA_2, is_assigned
from comity.core.keys import SigningKey
from comity.core.orders import OrderVerifier, sign_order, verify_order
from comity.core.target import target_facts, target_problem
from comity.v1 import comity_pb2 as pb

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[3]


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


def target(**kw: object) -> pb.TargetFacts:
    base: dict[str, object] = {
        "nationalities": ["MX"],
        "residences": ["MX"],
        "locations": ["MX"],
        "kind": pb.NATURAL_PERSON,
        "not_for_third_government": True,
    }
    return pb.TargetFacts(**{**base, **kw})  # type: ignore[arg-type]


def order(t: pb.TargetFacts | None, *, legacy: bool = False) -> pb.LegalOrder:
    o = pb.LegalOrder(
        order_id="US-SDNY-2026-0142",
        issuing_authority="us.court.sdny",
        issuing_country="US",
        offence_code="18 USC 1030(a)(7)",
        authorised_by="Hon. A. Judge",
        authorisation_type="judicial",
        selectors=[pb.Selector(type=pb.EMAIL, value="target@example.org")],
        categories=[pb.SUBSCRIBER],
    )
    o.valid_from.FromDatetime(NOW - timedelta(days=1))
    o.valid_until.FromDatetime(NOW + timedelta(days=30))
    if t is not None:
        o.target.CopyFrom(t)
    if legacy:
        o.attestation.CopyFrom(pb.TargetAttestation(nationality="MX", residence="MX", location="MX"))
    return o


def refused(envelope: pb.Envelope, fed: Federation) -> ComityError:
    # Gateway and node both verify through an OrderVerifier: the same code path.
    with pytest.raises(ComityError) as info:
        OrderVerifier(fed).verify(envelope, now=NOW)
    with pytest.raises(type(info.value)):
        verify_order(envelope, fed, now=NOW)
    return info.value


def test_a_well_formed_target_verifies(fed: Federation, us_court: SigningKey) -> None:
    t = target(nationalities=["MX", "GB"], kind=pb.LEGAL_PERSON, incorporated_in="GB")
    verified = verify_order(sign_order(order(t), us_court), fed, now=NOW)
    assert list(verified.order.target.nationalities) == ["MX", "GB"]


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy-attestation", "no-attestation"])
def test_an_order_signed_without_target_facts_must_be_re_signed(
    fed: Federation, us_court: SigningKey, legacy: bool
) -> None:
    err = refused(sign_order(order(None, legacy=legacy), us_court), fed)
    assert isinstance(err, FailedPrecondition)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.check_codes == ["ORDER_TARGET_MISSING"]
    assert err.rule_codes == ["INDEPENDENT_AUTHORISATION"]
    assert "re-signed by its authority (us.court.sdny)" in err.message
    assert "never read with defaults" in err.message


def test_an_order_with_both_attestations_is_ambiguous(fed: Federation, us_court: SigningKey) -> None:
    err = refused(sign_order(order(target(), legacy=True), us_court), fed)
    assert isinstance(err, FailedPrecondition)
    assert err.check_codes == ["ORDER_TARGET_LEGACY"]
    assert "re-signed" in err.message


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"nationalities": []}, "ORDER_TARGET_EMPTY", "target.nationalities"),
        ({"residences": []}, "ORDER_TARGET_EMPTY", "target.residences"),
        ({"locations": []}, "ORDER_TARGET_EMPTY", "target.locations"),
        ({"nationalities": [""]}, "ORDER_TARGET_CODE", "target.nationalities[0]"),
        ({"nationalities": ["MX", "us"]}, "ORDER_TARGET_CODE", "target.nationalities[1]"),
        ({"residences": ["Canada"]}, "ORDER_TARGET_CODE", "target.residences[0]"),
        ({"residences": ["UK"]}, "ORDER_TARGET_CODE", "target.residences[0]"),
        ({"locations": ["XK"]}, "ORDER_TARGET_CODE", "target.locations[0]"),
        ({"locations": [" MX"]}, "ORDER_TARGET_CODE", "target.locations[0]"),
        ({"nationalities": ["MX", "GB", "MX"]}, "ORDER_TARGET_REPEATED", "target.nationalities[2]"),
        ({"locations": ["CA", "CA"]}, "ORDER_TARGET_REPEATED", "target.locations[1]"),
        ({"kind": pb.TARGET_KIND_UNSPECIFIED}, "ORDER_TARGET_KIND", "target.kind"),
        ({"kind": 7}, "ORDER_TARGET_KIND", "target.kind"),
        ({"kind": pb.LEGAL_PERSON}, "ORDER_TARGET_KIND", "target.incorporated_in"),
        ({"kind": pb.LEGAL_PERSON, "incorporated_in": "ZZ"}, "ORDER_TARGET_CODE", "target.incorporated_in"),
        ({"incorporated_in": "GB"}, "ORDER_TARGET_KIND", "target.incorporated_in"),
    ],
)
def test_bad_target_facts_are_invalid_and_name_the_field(
    fed: Federation, us_court: SigningKey, change: dict[str, object], code: str, field: str
) -> None:
    err = refused(sign_order(order(target(**change)), us_court), fed)
    assert isinstance(err, InvalidArgument)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.check_codes == [code]
    assert err.rule_codes == ["NO_TARGETING"]
    assert f"{field} " in err.message
    assert "sign it again" in err.message


def test_the_checks_are_registered_and_none_is_generic() -> None:
    # A generic check would hide the field name; these say only what the order's text is.
    for code in (
        "ORDER_TARGET_MISSING",
        "ORDER_TARGET_LEGACY",
        "ORDER_TARGET_EMPTY",
        "ORDER_TARGET_CODE",
        "ORDER_TARGET_REPEATED",
        "ORDER_TARGET_KIND",
    ):
        check = refusals.catalogue()[code]
        assert not check.generic
        assert check.legal_basis


def test_the_builder_refuses_what_verification_refuses() -> None:
    with pytest.raises(ValueError, match=r"target\.residences\[1\]"):
        target_facts(
            nationalities=["MX"], residences=["MX", "MX"], locations=["MX"], not_for_third_government=True
        )
    with pytest.raises(ValueError, match="target kind"):
        target_facts(
            nationalities=["MX"],
            residences=["MX"],
            locations=["MX"],
            kind="company",
            not_for_third_government=True,
        )
    t = target_facts(
        nationalities=["US", "GB"], residences=["GB"], locations=["FR"], not_for_third_government=False
    )
    assert target_problem(t) is None and t.kind == pb.NATURAL_PERSON


def test_the_country_table_is_the_assigned_iso_list() -> None:
    assert {"US", "CA", "GB", "MX", "RU", "CN"} <= ALPHA_2
    assert not any(is_assigned(c) for c in ("UK", "EU", "XK", "ZZ", "us", "", "USA"))
    assert all(len(c) == 2 and c.isupper() for c in ALPHA_2)


def test_the_country_table_is_current() -> None:
    """Regenerating the table from the pinned pycountry reproduces the checked-in module."""
    pytest.importorskip("pycountry")
    with tempfile.TemporaryDirectory() as out:
        path = Path(out, "iso3166.py")
        subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_iso3166.py"), str(path)], check=True)
        checked_in = ROOT / "core" / "comity" / "core" / "iso3166.py"
        assert checked_in.read_text() == path.read_text(), "run python scripts/gen_iso3166.py and commit it"


def test_the_sdk_builds_checked_target_facts() -> None:
    import comity.sdk

    company = comity.sdk.target_facts(
        nationalities=["DE"],
        residences=["DE"],
        locations=["DE", "FR"],
        kind="legal-person",
        incorporated_in="DE",
        not_for_third_government=True,
    )
    assert (company.kind, company.incorporated_in) == (pb.LEGAL_PERSON, "DE")
    with pytest.raises(ValueError, match=r"target\.incorporated_in"):
        comity.sdk.target_facts(
            nationalities=["DE"], residences=["DE"], locations=["DE"], kind="legal-person",
            not_for_third_government=True,
        )  # fmt: skip
