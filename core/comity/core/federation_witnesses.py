"""Reading the federation file's ``[[witnesses]]`` and ``[witness_policy]`` (format 2).

Independent witnesses cosign like a node's witness and hold no data. The policy arranges every
witness in groups; the rules it must meet are those of :mod:`comity.core.witnesspolicy`, plus the
ones that need the whole file: every member country has a group, a country group holds the
witnesses of that country's nodes, a named group lists known witnesses, and every witness is in a
group. Errors name the field (``witness_policy.groups[2].threshold``).
"""

from __future__ import annotations

from datetime import timedelta

from comity.core.errors import ConfigError
from comity.core.federation import Member
from comity.core.federation_toml import COUNTRY, FederationTable
from comity.core.witnesspolicy import (
    DEFAULT_MAX_DELAY,
    WitnessGroup,
    WitnessIdentity,
    WitnessPolicy,
    WitnessPolicyError,
    parse_duration,
)

__all__ = ["parse_independent_witnesses", "parse_witness_policy"]


def parse_independent_witnesses(
    root: FederationTable, members: tuple[Member, ...]
) -> tuple[WitnessIdentity, ...]:
    """The ``[[witnesses]]`` of the file; their ids may not be a node's id or repeat."""
    taken = {n.id: "a node" for m in members for n in m.nodes}
    witnesses = []
    for t in root.tables("witnesses", required=False):
        witness_id = t.identifier()
        if witness_id in taken:
            raise t.error("id", f"{witness_id!r} is already the id of {taken[witness_id]}")
        taken[witness_id] = "another witness"
        pins = t.sha256_pins("tls_cert_sha256") if t.has("tls_cert_sha256") else ()
        tls_cert = t.path("tls_cert") if t.has("tls_cert") else None
        if tls_cert is not None and not pins:
            raise t.error("tls_cert_sha256", "a witness's tls_cert must be pinned by its SHA-256")
        witnesses.append(
            WitnessIdentity(
                id=witness_id,
                name=witness_id,
                country=None,
                endpoint=t.endpoint("endpoint"),
                keys=t.key_history("key", "keys", witness_id, format=2),
                display_name=t.text("name", "") or witness_id,
                tls_cert_pins=pins,
                tls_cert=tls_cert,
            )
        )
        t.done()
    return tuple(witnesses)


def parse_witness_policy(
    root: FederationTable, members: tuple[Member, ...], independent: tuple[WitnessIdentity, ...]
) -> WitnessPolicy:
    """The ``[witness_policy]`` table; without one, every member country with all of its witnesses."""
    countries = list(dict.fromkeys(m.country for m in members))
    if root.has("witness_policy"):
        t = root.sub("witness_policy")
        max_delay = _max_delay(t)
        groups = tuple(_group(g, members, independent) for g in t.tables("groups"))
        t.done()
        where = t.at("groups")
    else:
        max_delay = DEFAULT_MAX_DELAY
        groups = tuple(_country_group(c, members) for c in countries)
        where = "witness_policy"
        for g in groups:
            if not g.witnesses:
                raise ConfigError(
                    f"member country {g.country} has no node to witness the log",
                    field=where,
                    source=root.source,
                )
    try:
        policy = WitnessPolicy(groups, max_delay)
    except WitnessPolicyError as exc:
        group = "witness_policy" if exc.group is None else f"{where}[{exc.group}]"
        field = f"{group}.{exc.field}" if exc.field else group
        raise ConfigError(exc.message, field=field, source=root.source) from None
    for country in countries:
        if not any(g.country == country for g in groups):
            raise ConfigError(
                f"member country {country} has no witness group",
                field=where,
                source=root.source,
                hint=f'add [[witness_policy.groups]] with country = "{country}"',
            )
    grouped = {w for g in groups for w in g.witnesses}
    for i, m in enumerate(members):
        for j, n in enumerate(m.nodes):
            if n.id not in grouped:
                raise ConfigError(
                    f"the witness of node {n.id!r} ({n.country}) belongs to no group of the witness policy",
                    field=f"members[{i}].nodes[{j}].country",
                    source=root.source,
                )
    for i, w in enumerate(independent):
        if w.id not in grouped:
            raise ConfigError(
                f"witness {w.id!r} belongs to no group of the witness policy",
                field=f"witnesses[{i}].id",
                source=root.source,
            )
    return policy


def _max_delay(t: FederationTable) -> timedelta:
    if not t.has("max_delay"):
        return DEFAULT_MAX_DELAY
    try:
        return parse_duration(t.text("max_delay"))
    except ValueError as exc:
        raise t.error("max_delay", str(exc)) from None


def _country_group(country: str, members: tuple[Member, ...], threshold: int | None = None) -> WitnessGroup:
    ids = tuple(n.id for m in members for n in m.nodes if n.country == country)
    return WitnessGroup(country, country, ids, len(ids) if threshold is None else threshold)


def _group(
    t: FederationTable, members: tuple[Member, ...], independent: tuple[WitnessIdentity, ...]
) -> WitnessGroup:
    if t.has("country") == t.has("name"):
        raise t.error(
            "country", "give exactly one of country (a member country's nodes) or name (with witnesses)"
        )
    threshold = t.integer("threshold") if t.has("threshold") else None
    if t.has("country"):
        country = t.pattern("country", COUNTRY, "an ISO 3166-1 alpha-2 code like 'GB'")
        if country not in {m.country for m in members}:
            raise t.error("country", f"{country} is not a member country")
        if t.has("witnesses"):
            raise t.error(
                "witnesses", "a country group holds the witnesses of that country's nodes; list none"
            )
        group = _country_group(country, members, threshold)
        if not group.witnesses:
            raise t.error("country", f"{country} has no node, so its group has no witness")
    else:
        name = t.identifier("name")
        ids = t.strings("witnesses")
        known = {w.id for w in independent} | {n.id for m in members for n in m.nodes}
        for i, w in enumerate(ids):
            if w not in known:
                raise ConfigError(
                    f"{w!r} is not a witness of the federation",
                    field=f"{t.at('witnesses')}[{i}]",
                    source=t.source,
                )
        group = WitnessGroup(name, None, ids, len(ids) if threshold is None else threshold)
    t.done()
    return group
