"""``comity init DIR --node CC:PORT ...``: write a complete federation for a demo or a test."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from comity.core.bootstrap import FederationLayout, init_federation
from comity.core.errors import ConfigError
from comity.core.federation import Federation
from comity.sdk.cli._common import errors_exit, passphrase_from_env, stdout

__all__ = ["init", "parse_node"]


def parse_node(value: str) -> tuple[str, int]:
    """``CC:PORT`` (e.g. ``GB:7103``) as (country, port)."""
    country, _, port = value.partition(":")
    if not port.isdigit() or not 0 < int(port) < 65536 or len(country) != 2 or not country.isalpha():
        raise ConfigError(
            f"--node {value!r} is not COUNTRY:PORT", field="--node", hint="e.g. --node GB:7101 --node FR:7102"
        )
    return country.upper(), int(port)


def _threshold(layout: FederationLayout) -> str:
    role = Federation.load(layout.federation_file).signing
    assert role is not None  # written with signing=True
    return f"{role.threshold} of the {len(role.keys)} agencies' federation keys ({', '.join(role.keys)})"


def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder to write into (created; must not hold a federation).")
    ],
    node: Annotated[
        list[str],
        typer.Option(
            "--node",
            help="A member country and its node's port, COUNTRY:PORT (ISO 3166-1 alpha-2); "
            "give it once per country, at least twice.",
        ),
    ],
    gateway_port: Annotated[int, typer.Option(help="Port of the gateway.")] = 7443,
    bundles: Annotated[
        list[Path] | None,
        typer.Option(
            "--bundles",
            help="A folder of policy bundles (or one bundle) to make agreements from, beside the "
            "shipped ones; copied into DIR/bundles by digest.",
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="The federation's name.")] = "federation",
    host: Annotated[str, typer.Option(help="Address everything listens on.")] = "127.0.0.1",
    passphrase_env: Annotated[
        str | None,
        typer.Option(help="Encrypt private keys with the passphrase in this environment variable."),
    ] = None,
) -> None:
    """Write keys, certificates, JWKS and a format-2 federation.toml for the given countries.

    Each agency gets a federation key (keys/AGENCY/federation.key); the file's signing role
    lists them all, and a majority of them must sign its next version.

    Every shipped or given gateway bundle whose parties are all among the countries becomes an
    agreement of the federation file, with its parties' inbound bundles; a pair of countries
    that no bundle binds has no agreement, and queries between them are refused.
    """
    from comity.policy.bundle_store import BundleStore
    from comity.policy.pairing import agreements_from_bundles, extra_bundles, shipped_bundles

    with errors_exit():
        countries: dict[str, int] = {}
        for value in node:
            country, port = parse_node(value)
            if country in countries:
                raise ConfigError(f"{country} is given twice", field="--node")
            countries[country] = port
        extra = extra_bundles(bundles or [])
        agreements = agreements_from_bundles([*shipped_bundles(), *extra], countries)
        layout = init_federation(
            directory,
            gateway_port=gateway_port,
            countries=countries,
            agreements=agreements,
            name=name,
            host=host,
            passphrase=passphrase_from_env(passphrase_env),
            signing=True,
        )
        store = BundleStore(directory / "bundles")
        for bundle in extra:
            store.keep(bundle)
    stdout.print(f"wrote federation [bold]{layout.name}[/] to {layout.federation_file}")
    stdout.print(f"  gateway {layout.gateway.endpoint}")
    for files in layout.nodes.values():
        stdout.print(f"  {files.node_id} ({files.country}) {files.endpoint}")
    for agency in layout.agencies.values():
        stdout.print(f"  {agency.agency}: investigator {agency.investigator}, authority {agency.authority}")
    for agreement in layout.agreements:
        stdout.print(f"  agreement {agreement.id}: {' – '.join(agreement.parties)}", soft_wrap=True)
    stdout.print(f"  next version signed by {_threshold(layout)} (comity federation sign)")
    if extra:
        stdout.print(f"  bundles kept by digest in {directory / 'bundles'} (the [policy] store)")
