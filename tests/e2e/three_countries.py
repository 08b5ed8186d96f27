"""Bundles for a third country, made from the shipped US–Canada ones for the three-country tests.

The shipped bundles hold the US–Canada agreement. A US–GB agreement is written the same way a
policy author would start one: copy the bundles, rename them, and put the new party where the
old one was (its country code in the scope rules, the offence catalogue and the bundles' own
test cases). Each copy has its own digest, and loading it runs its own tests.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from comity.policy.bundle import PolicyBundle, bundle_path

__all__ = ["bundle_variant", "third_country_bundles"]


def bundle_variant(source: str, target: Path, *, name: str, swap: dict[str, str]) -> PolicyBundle:
    """Copy shipped bundle ``source`` to ``target`` named ``name``, each quoted country code of
    ``swap`` replaced by its value (``{"CA": "GB"}``: ``"CA"`` becomes ``"GB"``)."""
    shutil.copytree(bundle_path(source), target)
    pattern = re.compile("|".join(f'"{re.escape(c)}"' for c in swap))
    for path in target.rglob("*"):
        if path.is_file() and path.suffix in (".toml", ".cedar", ".json", ".cedarschema"):
            text = pattern.sub(lambda m: f'"{swap[m.group(0)[1:-1]]}"', path.read_text(encoding="utf-8"))
            if path.name == "bundle.toml":
                text = re.sub(r'^name = ".*"$', f'name = "{name}"', text, count=1, flags=re.MULTILINE)
            path.write_text(text, encoding="utf-8")
    return PolicyBundle.load(target)


def third_country_bundles(folder: Path) -> dict[str, PolicyBundle]:
    """The US–GB agreement's bundles in ``folder``: the gateway's, and each party's inbound one."""
    gb = {"CA": "GB", "GB": "CA"}  # swapped both ways, so a case naming both stays valid
    return {
        "us-gb-agreement": bundle_variant(
            "us-ca-agreement", folder / "us-gb-agreement", name="us-gb-agreement", swap=gb
        ),
        "us-inbound-gb": bundle_variant(
            "us-inbound", folder / "us-inbound-gb", name="us-inbound-gb", swap=gb
        ),
        "gb-inbound": bundle_variant("ca-inbound", folder / "gb-inbound", name="gb-inbound", swap=gb),
    }
