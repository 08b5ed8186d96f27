"""Selector normalisation: one canonical form, and refusal of anything that is not an exact identifier."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comity.core.errors import InvalidArgument
from comity.core.selectors import MAX_LENGTH, InvalidSelector, normalise, normalise_selectors
from comity.nodes.schema import Selector, SelectorType

T = SelectorType


@pytest.mark.parametrize(
    ("kind", "value", "region", "expected"),
    [
        (T.EMAIL, "Alice.Smith@Example.ORG", "US", "alice.smith@example.org"),
        (T.EMAIL, "  bob+tag@mail.example.com ", "US", "bob+tag@mail.example.com"),
        (T.PHONE, "(416) 555-0123", "CA", "+14165550123"),
        (T.PHONE, "416.555.0123", "CA", "+14165550123"),
        (T.PHONE, "+1 212 555 0188", "CA", "+12125550188"),
        (T.PHONE, "+44 20 7946 0958", "US", "+442079460958"),
        (T.IP_ADDRESS, "203.0.113.7", "US", "203.0.113.7"),
        (T.IP_ADDRESS, "2001:DB8:0:0:0:0:0:1", "US", "2001:db8::1"),
        (T.IP_ADDRESS, "::ffff:203.0.113.7", "US", "203.0.113.7"),
        (T.ACCOUNT_ID, " US-ACC-00000012 ", "US", "US-ACC-00000012"),
        (T.DEVICE_ID, "4A800646-417A-4105-BC31-99944567CEB1", "US", "4a800646-417a-4105-bc31-99944567ceb1"),
        (T.USERNAME, "Daniel_Park0", "US", "daniel_park0"),
        (T.FIREARM_SERIAL, "ab123-x", "US", "AB123-X"),
        (T.IMEI, "49-015420-323751-8", "US", "490154203237518"),
        (T.VEHICLE_VIN, "1hgcm82633a004352", "US", "1HGCM82633A004352"),
    ],
)
def test_canonical_forms(kind: SelectorType, value: str, region: str, expected: str) -> None:
    assert normalise(kind, value, region=region) == expected
    # Normalising is idempotent: the stored form looks itself up.
    assert normalise(kind, expected, region=region) == expected


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        (T.EMAIL, "", "empty"),
        (T.EMAIL, "   ", "empty"),
        (T.EMAIL, "x' OR '1'='1", "e-mail"),
        (T.EMAIL, "a@b.com'; DROP TABLE records; --", "domain"),
        (T.EMAIL, "a*@example.org", "wildcard"),
        (T.EMAIL, "%@example.org", "wildcard"),
        (T.EMAIL, "no-at-sign.example.org", "not an e-mail"),
        (T.EMAIL, "a..b@example.org", "local part"),
        (T.EMAIL, "a@localhost", "domain"),
        (T.EMAIL, "\u0430lice@example.org", "non-ASCII"),  # Cyrillic a
        (T.EMAIL, "alice@ex\u0430mple.org", "non-ASCII"),
        (T.EMAIL, "ａｌｉｃｅ@example.org", "non-ASCII"),  # full-width
        (T.EMAIL, "alice\u200b@example.org", "control or format"),  # zero-width space
        (T.EMAIL, "alice\x00@example.org", "control"),
        (T.PHONE, "+1 416 555 01234567", "valid phone"),
        (T.PHONE, "call me", "characters"),
        (T.PHONE, "+1416555012?", "wildcard"),
        (T.PHONE, "+1-416-555-0123; --", "characters"),
        (T.PHONE, "١٢٣٤٥٦٧٨٩٠", "non-ASCII"),  # Arabic-Indic digits
        (T.IP_ADDRESS, "10.0.0.0/8", "ranges"),
        (T.IP_ADDRESS, "256.1.1.1", "IPv4"),
        (T.IP_ADDRESS, "010.1.1.1", "IPv4"),
        (T.IP_ADDRESS, "1.1.1.*", "wildcard"),
        (T.ACCOUNT_ID, "x' OR '1'='1", "allowed set"),
        (T.ACCOUNT_ID, "acc 1", "allowed set"),
        (T.ACCOUNT_ID, "acc;1", "allowed set"),
        (T.ACCOUNT_ID, "acc\\1", "allowed set"),
        (T.DEVICE_ID, 'dev"1', "allowed set"),
        (T.USERNAME, "bob--", "allowed set"),
        (T.FIREARM_SERIAL, "AB/12", "allowed set"),
        (T.IMEI, "490154203237517", "check digit"),
        (T.IMEI, "4901542032", "15 digits"),
        (T.VEHICLE_VIN, "1HGCM82633A00435O", "without I, O or Q"),
        (T.VEHICLE_VIN, "1HGCM82633A0043", "without I, O or Q"),
    ],
)
def test_refusals_name_the_reason(kind: SelectorType, value: str, reason: str) -> None:
    with pytest.raises(InvalidSelector, match=reason) as caught:
        normalise(kind, value, position=2)
    assert caught.value.code.name == "INVALID_ARGUMENT"
    assert str(caught.value).startswith(f"selector 2 ({kind.name})")


@pytest.mark.parametrize("kind", list(SelectorType))
def test_over_long_values_are_refused_without_echo(kind: SelectorType) -> None:
    value = "9" * (MAX_LENGTH[kind] + 1) + "SECRETVALUE"
    with pytest.raises(InvalidSelector, match="limit") as caught:
        normalise(kind, value, position=0)
    assert "SECRETVALUE" not in caught.value.diagnostics()


def test_errors_never_echo_the_value() -> None:
    with pytest.raises(InvalidSelector) as caught:
        normalise(T.EMAIL, "victim.name' OR 1=1 --@example.org", position=0)
    assert "victim" not in caught.value.diagnostics()


def test_unknown_types_are_refused() -> None:
    with pytest.raises(InvalidSelector, match="unknown selector type"):
        normalise(0, "x")
    with pytest.raises(InvalidArgument, match="unknown selector type"):
        normalise("PASSPORT", "x")
    assert normalise("EMAIL", "A@example.org") == "a@example.org"


def test_normalise_selectors_numbers_positions_and_drops_duplicates() -> None:
    got = normalise_selectors([(1, "A@example.org"), (T.EMAIL, "a@example.org"), (4, "192.0.2.1")])
    assert got == [Selector(T.EMAIL, "a@example.org"), Selector(T.IP_ADDRESS, "192.0.2.1")]
    with pytest.raises(InvalidSelector, match=r"selector 1 \(PHONE\)"):
        normalise_selectors([(1, "a@example.org"), (2, "not a phone")])


@given(st.text(max_size=40))
def test_every_accepted_value_is_plain_ascii_without_sql_quotes(value: str) -> None:
    for kind in SelectorType:
        try:
            out = normalise(kind, value)
        except InvalidSelector:
            continue
        assert out.isascii() and out.isprintable()
        assert not set(out) & set("'\";\\*%?\x00")
        assert normalise(kind, out) == out
