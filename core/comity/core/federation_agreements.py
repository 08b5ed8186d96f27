"""Reading the federation file's ``[[agreements]]`` (format 2).

Each agreement names member countries as parties, the gateway's bundle digest, its period and
an inbound bundle digest for every party. Agreements binding a common pair of countries may not
overlap in time. Errors name the field (``agreements[1].parties[0]``).
"""

from __future__ import annotations

import re
from types import MappingProxyType

from comity.core.agreements import Agreement, overlapping
from comity.core.errors import ConfigError
from comity.core.federation import Member
from comity.core.federation_toml import FederationTable

__all__ = ["parse_agreements"]

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def parse_agreements(root: FederationTable, members: tuple[Member, ...]) -> tuple[Agreement, ...]:
    """The file's agreements, validated against its member countries and each other."""
    countries = {m.country for m in members}
    agreements: list[Agreement] = []
    for i, t in enumerate(root.tables("agreements", required=False)):
        agreement = _agreement(t, countries)
        for j, earlier in enumerate(agreements):
            if earlier.id == agreement.id:
                raise t.error("id", f"agreement {agreement.id!r} is already defined as agreements[{j}]")
            pair = overlapping(earlier, agreement)
            if pair:
                raise ConfigError(
                    f"overlaps agreement {earlier.id!r} (agreements[{j}]) for {pair[0]} and {pair[1]}: "
                    "at most one agreement may bind a pair of countries at any time",
                    field=f"agreements[{i}].effective_from",
                    source=root.source,
                    hint=f"end {earlier.id!r} (effective_until) where this one begins",
                )
        agreements.append(agreement)
    return tuple(agreements)


def _agreement(t: FederationTable, countries: set[str]) -> Agreement:
    agreement_id = t.identifier()
    parties = t.strings("parties")
    if len(parties) < 2:
        raise t.error("parties", "an agreement binds at least two countries")
    for j, party in enumerate(parties):
        if party not in countries:
            raise ConfigError(
                f"{party!r} is not a member country", field=f"{t.at('parties')}[{j}]", source=t.source
            )
        if party in parties[:j]:
            raise ConfigError(f"{party} is listed twice", field=f"{t.at('parties')}[{j}]", source=t.source)
    start = t.instant("effective_from")
    end = t.optional_instant("effective_until")
    if end is not None and end <= start:
        raise t.error("effective_until", "must be later than effective_from")
    agreement = Agreement(
        id=agreement_id,
        parties=parties,
        bundle_digest=_digest(t, "bundle_digest"),
        effective_from=start,
        effective_until=end,
        inbound=_inbound(t.sub("inbound"), parties),
    )
    t.done()
    return agreement


def _inbound(t: FederationTable, parties: tuple[str, ...]) -> MappingProxyType[str, str]:
    for country in sorted(set(t.keys()) - set(parties)):
        raise t.error(country, f"{country} is not a party of this agreement")
    digests = {country: _digest(t, country) for country in parties}
    t.done()
    return MappingProxyType(digests)


def _digest(t: FederationTable, key: str) -> str:
    value = t.text(key).strip().lower()
    if not _DIGEST.match(value):
        raise t.error(key, "must be a bundle digest, sha256:<64 hex digits> (see comity policy)")
    return value
