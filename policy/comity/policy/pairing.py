"""Agreements made from bundles: what ``comity init`` writes into a new federation file.

A gateway bundle whose manifest names its ``parties`` becomes an agreement among them when every
party is a member of the federation being written, with each party's inbound bundle (a node
bundle with the same parties and that country) by digest. Its id is the bundle's name and it
is in force from the bundle's ``effective`` date. Bundles that do not name parties are left out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from types import MappingProxyType

from comity.core.agreements import Agreement
from comity.policy.bundle import PolicyBundle, bundle_roots
from comity.policy.errors import BundleError

__all__ = ["agreements_from_bundles", "extra_bundles", "shipped_bundles"]


def shipped_bundles() -> Iterator[PolicyBundle]:
    """Every bundle shipped with Comity (loaded: validated and self-tested)."""
    seen: set[Path] = set()
    for root in bundle_roots(Path(__file__).resolve().parent):
        for manifest in sorted(root.glob("*/bundle.toml")) if root.is_dir() else []:
            folder = manifest.parent.resolve()
            if folder not in seen:
                seen.add(folder)
                yield PolicyBundle.load(folder)


def agreements_from_bundles(bundles: Iterable[PolicyBundle], countries: Collection[str]) -> list[Agreement]:
    """One agreement per gateway bundle whose parties are all in ``countries``.

    Raises:
        BundleError: when such a bundle lacks a party's inbound bundle, or has two of one.
    """
    loaded = list(bundles)
    agreements: list[Agreement] = []
    for bundle in loaded:
        m = bundle.manifest
        if m.scope != "gateway" or not m.parties or not set(m.parties) <= set(countries):
            continue
        inbound: dict[str, str] = {}
        for party in m.parties:
            found = {
                b.digest
                for b in loaded
                if b.manifest.scope == "node" and b.manifest.country == party
                and set(b.manifest.parties) == set(m.parties)
            }  # fmt: skip
            if len(found) != 1:
                what = "no" if not found else "more than one"
                raise BundleError(
                    f"{what} inbound bundle of {party} for the agreement of {', '.join(m.parties)}",
                    source=m.name,
                    hint=f'give exactly one node bundle with country = "{party}" and the same parties',
                )
            inbound[party] = found.pop()
        agreements.append(
            Agreement(
                id=m.name,
                parties=m.parties,
                bundle_digest=bundle.digest,
                effective_from=dt.datetime.combine(m.effective, dt.time(), tzinfo=dt.UTC),
                inbound=MappingProxyType(inbound),
            )
        )
    return agreements


def extra_bundles(folders: Iterable[Path]) -> list[PolicyBundle]:
    """The bundles in ``folders``: each is one bundle (it holds ``bundle.toml``) or a folder of them."""
    found: list[PolicyBundle] = []
    for folder in folders:
        if (folder / "bundle.toml").is_file():
            found.append(PolicyBundle.load(folder))
            continue
        manifests = sorted(folder.glob("*/bundle.toml")) if folder.is_dir() else []
        if not manifests:
            raise BundleError(
                "holds no policy bundle" if folder.exists() else "no such folder",
                source=str(folder),
                hint="give a bundle's folder (it holds bundle.toml) or a folder of bundle folders",
            )
        found += [PolicyBundle.load(m.parent) for m in manifests]
    return found
