"""More countries in the demo: ``comity demo --countries us,ca,gb``.

The demo's story is the US–Canada agreement. Each further country joins under an agreement
with the United States only, whose bundles are made here from the shipped US–Canada ones, the
new country in Canada's place (its offence catalogue, its inbound rules): a demo's stand-in for
a real agreement's bundles, which a policy author writes and tests (docs/policy.md). No
agreement binds a further country and Canada, so queries between them are refused
``NO_AGREEMENT``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from comity.core.errors import ConfigError
from comity.core.federation import Federation
from comity.core.federation_toml import COUNTRY
from comity.nodes.schema import SelectorType
from comity.nodes.synthetic import Person
from comity.policy.bundle import PolicyBundle, bundle_path
from comity.sdk.demo.scenario import Scenario
from comity.sdk.demo.setup import DEMO_COUNTRIES, DemoFederation, OrderSpec

__all__ = [
    "bundle_variant",
    "further_countries",
    "parse_countries",
    "partner_bundles",
    "partner_scenarios",
]

# The bundles each further country's agreement is made from, by their role.
_AGREEMENT, _US_INBOUND, _PARTNER_INBOUND = "us-ca-agreement", "us-inbound", "ca-inbound"


def parse_countries(text: str) -> tuple[str, ...]:
    """``us,ca,gb`` as ``("US", "CA", "GB")``: the demo's two countries first, then any others."""
    countries = tuple(c.strip().upper() for c in text.split(",") if c.strip())
    for code in countries:
        if not COUNTRY.match(code):
            raise ConfigError(
                f"{code!r} is not a country code",
                field="--countries",
                hint="two letters each, ISO 3166-1 alpha-2, e.g. --countries us,ca,gb",
            )
    if len(set(countries)) != len(countries):
        raise ConfigError(f"{text!r} names a country twice", field="--countries")
    if countries[: len(DEMO_COUNTRIES)] != DEMO_COUNTRIES:
        raise ConfigError(
            f"the demo's story is the agreement of {' and '.join(DEMO_COUNTRIES)}: "
            f"--countries must begin with {','.join(DEMO_COUNTRIES).lower()}",
            field="--countries",
            hint="e.g. --countries us,ca,gb (the UK joins under an agreement with the US)",
        )
    return countries


def further_countries(countries: Sequence[str]) -> tuple[str, ...]:
    """The countries beyond the demo's two."""
    return tuple(c for c in countries if c not in DEMO_COUNTRIES)


def bundle_variant(source: str, target: Path, *, name: str, swap: dict[str, str]) -> PolicyBundle:
    """Copy shipped bundle ``source`` to ``target`` named ``name``, each quoted country code of
    ``swap`` replaced by its value (``{"CA": "GB"}``: ``"CA"`` becomes ``"GB"``); loading it
    runs the copy's own tests."""
    shutil.copytree(bundle_path(source), target)
    pattern = re.compile("|".join(f'"{re.escape(c)}"' for c in swap))
    for path in target.rglob("*"):
        if path.is_file() and path.suffix in (".toml", ".cedar", ".json", ".cedarschema"):
            text = pattern.sub(lambda m: f'"{swap[m.group(0)[1:-1]]}"', path.read_text(encoding="utf-8"))
            if path.name == "bundle.toml":
                text = re.sub(r'^name = ".*"$', f'name = "{name}"', text, count=1, flags=re.MULTILINE)
            path.write_text(text, encoding="utf-8")
    return PolicyBundle.load(target)


def partner_bundles(folder: Path, country: str) -> dict[str, PolicyBundle]:
    """The US–``country`` agreement's bundles in ``folder``: the gateway's, and each party's inbound one."""
    cc = country.lower()
    swap = {"CA": country, country: "CA"}  # both ways, so a test case naming both stays valid
    names = {
        _AGREEMENT: f"us-{cc}-agreement",
        _US_INBOUND: f"us-inbound-{cc}",
        _PARTNER_INBOUND: f"{cc}-inbound",
    }
    return {
        name: bundle_variant(source, folder / name, name=name, swap=swap) for source, name in names.items()
    }


def _person(subjects: list[Person], country: str) -> Person:
    return next(p for p in subjects if p.nationality == country and p.residence == country)


def partner_scenarios(fed: DemoFederation, country: str) -> list[Scenario]:
    """``country`` and the US query each other under their agreement; ``country`` → Canada is refused."""
    node = next(n for n in fed.layout.nodes.values() if n.country == country)
    agency = node.agency
    name = next(m.name for m in Federation.load(fed.layout.federation_file).members if m.agency == agency)
    email, subscriber = (SelectorType.EMAIL,), ("SUBSCRIBER",)
    canadian_in_us = _person(fed.subjects["us-node"], "CA")
    american_in_partner = _person(fed.subjects[node.node_id], "US")
    american_in_ca = _person(fed.subjects["ca-node"], "US")
    firearms = (
        "Two pistols seized on 2026-08-30 were bought through an online broker whose invoices were sent "
        "to this e-mail address."
    )
    return [
        Scenario(
            f"The {name} fetches subscriber records of a firearms-trafficking suspect from the US node",
            agency,
            "us-node",
            canadian_in_us,
            "fetch",
            subscriber,
            OrderSpec(f"{country}-DEMO-2026-0201", agency, "CC 99", canadian_in_us, email, subscriber),
            True,
            f"Decided under the US–{country} agreement's bundles, at the gateway and at the US node.",
            facts=firearms,
            link="The address received the broker's invoices for the seized pistols.",
            case_reference=f"{country}-2026-FA-0201",
        ),
        Scenario(
            f"FBI fetches subscriber records from the {country} node",
            "us.fbi",
            node.node_id,
            american_in_partner,
            "fetch",
            subscriber,
            OrderSpec(
                f"US-SDNY-2026-{country}01",  # one order per further country: its own target
                "us.fbi",
                "18 USC 1030(a)(7)",
                american_in_partner,
                email,
                subscriber,
            ),
            True,
            f"The other direction of the same agreement, checked by {country}'s own inbound rules.",
            facts=(
                "A second ransomware intrusion on 2026-10-05 used a payment portal registered with this "
                "e-mail address."
            ),
            link="The address registered the portal that collected the ransom.",
            case_reference="FBI-2026-CY-0533",
        ),
        Scenario(
            f"The {name} asks the Canadian node about the same case",
            agency,
            "ca-node",
            american_in_ca,
            "fetch",
            subscriber,
            OrderSpec(f"{country}-DEMO-2026-0202", agency, "CC 99", american_in_ca, email, subscriber),
            False,
            f"No agreement binds {country} and Canada: refused at the gateway, and logged as such.",
            facts=firearms,
            link="The address received the broker's invoices for the seized pistols.",
            case_reference=f"{country}-2026-FA-0201",
        ),
    ]
