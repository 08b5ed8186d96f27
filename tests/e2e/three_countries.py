"""Bundles for a third country, made from the shipped US–Canada ones for the three-country tests.

The shipped bundles hold the US–Canada agreement. A US–GB agreement is written the same way a
policy author would start one: copy the bundles, rename them, and put the new party where the
old one was (its country code in the scope rules, the offence catalogue and the bundles' own
test cases). Each copy has its own digest, and loading it runs its own tests. The demo makes
its further countries' bundles the same way (:mod:`comity.sdk.demo.more_countries`).
"""

from __future__ import annotations

from pathlib import Path

from comity.policy.bundle import PolicyBundle
from comity.sdk.demo.more_countries import bundle_variant, partner_bundles

__all__ = ["bundle_variant", "third_country_bundles"]


def third_country_bundles(folder: Path) -> dict[str, PolicyBundle]:
    """The US–GB agreement's bundles in ``folder``: the gateway's, and each party's inbound one."""
    return partner_bundles(folder, "GB")
