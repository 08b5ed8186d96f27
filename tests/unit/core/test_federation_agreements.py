"""Agreements in the federation file: parties, bundles, periods, and which one decides a query."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from comity.core.agreements import Agreement, agreement_for, overlapping
from comity.core.bootstrap import FederationLayout, init_federation
from comity.core.errors import ConfigError
from comity.core.federation import Federation

Format2 = Callable[..., str]  # the conftest's format2 fixture
GATEWAY = "sha256:" + "a" * 64
US_IN, CA_IN = "sha256:" + "b" * 64, "sha256:" + "c" * 64


def agreement(
    agreement_id: str = "us-ca-cloud-act",
    *,
    parties: str = '["US", "CA"]',
    start: str = "2026-01-01T00:00:00Z",
    end: str | None = "2031-01-01T00:00:00Z",
    inbound: str = f'US = "{US_IN}"\nCA = "{CA_IN}"',
    digest: str = GATEWAY,
) -> str:
    until = f"effective_until = {end}\n" if end else ""
    return (
        f'\n[[agreements]]\nid = "{agreement_id}"\nparties = {parties}\nbundle_digest = "{digest}"\n'
        f"effective_from = {start}\n{until}[agreements.inbound]\n{inbound}\n"
    )


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(
        tmp_path_factory.mktemp("fed"),
        gateway_port=7443,
        countries={"US": 7101, "CA": 7102},
        format=1,
        name="us-ca",
    )


@pytest.fixture(scope="module")
def load(layout: FederationLayout, format2: Format2) -> Callable[[str], Federation]:
    base = format2(layout.federation_file.read_text())

    def parse(extra: str) -> Federation:
        return Federation.from_toml_text(base + extra, base=layout.directory, source="fed.toml")

    return parse


def at(year: int, month: int = 1, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def test_a_query_between_parties_is_decided_under_the_agreement_in_force(
    load: Callable[[str], Federation],
) -> None:
    fed = load(agreement() + agreement("us-ca-2031", start="2031-01-01T00:00:00Z", end=None))
    first = fed.agreement_for("US", "CA", at(2026, 6))
    assert first is not None
    assert (first.id, first.parties, first.bundle_digest) == ("us-ca-cloud-act", ("US", "CA"), GATEWAY)
    assert first.inbound_digest("CA") == CA_IN
    assert first.inbound_digest("US") == US_IN
    assert fed.agreement_for("CA", "US", at(2026, 6)) == first
    # effective_until is exclusive: the successor decides from its first instant.
    later = fed.agreement_for("US", "CA", at(2031))
    assert later is not None and later.id == "us-ca-2031"
    assert fed.agreement_for("US", "CA", at(2025, 12, 31)) is None
    assert fed.agreement_for("US", "US", at(2026, 6)) is None
    assert fed.agreement_for("US", "FR", at(2026, 6)) is None


def test_without_agreements_every_query_has_none(
    load: Callable[[str], Federation], layout: FederationLayout
) -> None:
    assert load("").agreement_for("US", "CA", at(2026)) is None
    format1 = Federation.load(layout.federation_file)
    assert format1.agreements == () and format1.agreement_for("US", "CA", at(2026)) is None
    bad = layout.federation_file.read_text() + agreement()
    with pytest.raises(ConfigError, match="needs format = 2") as info:
        Federation.from_toml_text(bad, base=layout.directory, source="fed.toml")
    assert info.value.field == "agreements"


@pytest.mark.parametrize(
    ("extra", "field", "why"),
    [
        (agreement(parties='["US", "FR"]'), "agreements[0].parties[1]", "'FR' is not a member country"),
        (agreement(parties='["US"]'), "agreements[0].parties", "at least two countries"),
        (agreement(parties='["US", "US"]'), "agreements[0].parties[1]", "listed twice"),
        (agreement(parties="[]"), "agreements[0].parties", "non-empty array"),
        (agreement(digest="abc"), "agreements[0].bundle_digest", "sha256:<64 hex digits>"),
        (agreement(end="2025-01-01T00:00:00Z"), "agreements[0].effective_until", "later than effective_from"),
        (agreement(start="2026-01-01"), "agreements[0].effective_from", "offset"),
        (agreement(inbound=f'US = "{US_IN}"'), "agreements[0].inbound.CA", "missing"),
        (agreement(inbound=f'US = "{US_IN}"\nCA = "{CA_IN}"\nFR = "{CA_IN}"'), "agreements[0].inbound.FR",
         "not a party"),
        (agreement(inbound=f'US = "{US_IN}"\nCA = "nope"'), "agreements[0].inbound.CA", "bundle digest"),
        (agreement() + agreement(), "agreements[1].id", "already defined"),
        (agreement() + agreement("second", start="2030-06-01T00:00:00Z"), "agreements[1].effective_from",
         "overlaps agreement 'us-ca-cloud-act' (agreements[0]) for CA and US"),
        (agreement(end=None) + agreement("second", start="2040-01-01T00:00:00Z", end=None),
         "agreements[1].effective_from", "overlaps"),
        (agreement("second", start="2030-06-01T00:00:00Z") + agreement(), "agreements[1].effective_from",
         "overlaps"),
        (agreement().replace("effective_from", "efective_from"), "agreements[0].effective_from", "missing"),
    ],
    ids=["non-member", "one-party", "party-twice", "no-parties", "digest", "inverted", "naive", "no-inbound",
         "inbound-stranger", "inbound-digest", "same-id", "overlap", "open-ended-overlap", "overlap-earlier",
         "misspelt"],
)  # fmt: skip
def test_a_bad_agreement_is_refused_naming_the_field(
    load: Callable[[str], Federation], extra: str, field: str, why: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(why)) as info:
        load(extra)
    assert info.value.field == field, info.value.message


def test_agreements_meeting_end_to_start_or_binding_other_pairs_may_coexist() -> None:
    def make(agreement_id: str, parties: tuple[str, ...], start: int, end: int | None) -> Agreement:
        return Agreement(agreement_id, parties, GATEWAY, at(start), at(end) if end else None)

    us_ca, us_ca_next = make("a", ("US", "CA"), 2026, 2031), make("b", ("US", "CA"), 2031, None)
    us_uk = make("c", ("US", "UK"), 2026, None)
    multilateral = make("d", ("US", "CA", "UK"), 2028, None)
    assert overlapping(us_ca, us_ca_next) is None
    assert overlapping(us_ca, us_uk) is None  # they share only the US
    assert overlapping(us_uk, multilateral) == ("UK", "US")
    agreements = [us_ca, us_ca_next, us_uk]
    assert agreement_for(agreements, "UK", "US", at(2027)) == us_uk
    assert agreement_for(agreements, "UK", "CA", at(2027)) is None
    with pytest.raises(ValueError, match="offset"):
        agreement_for(agreements, "US", "CA", datetime(2027, 1, 1))
