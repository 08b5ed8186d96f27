"""Rules: one Cedar policy per file, annotated with its stable id and legal source."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import cedarpy

from comity.policy.errors import BundleError

__all__ = ["REQUIRED_ANNOTATIONS", "Rule", "parse_rule", "policy_set"]

REQUIRED_ANNOTATIONS = ("id", "legal_basis", "public_message")


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a bundle.

    A ``forbid`` rule refuses a query when its condition holds. The bundle's one
    ``permit`` rule states the agreement's scope; a query it does not cover is refused
    under the permit's id.
    """

    id: str
    """Stable name, e.g. ``"SERIOUS_CRIME"``; also the file's name and the Cedar policy id."""
    effect: str
    """``"forbid"`` or ``"permit"``."""
    legal_basis: str
    """The legal source, e.g. ``"18 U.S.C. §2523(b)(4)(D)(i)"``."""
    public_message: str
    """What the requester is told when the rule refuses a query, and how to fix it."""
    source: str
    """The rule's Cedar text as written in its file."""
    est: dict[str, Any]
    """The parsed policy (Cedar's JSON form), used to assemble the policy set."""


def parse_rule(text: str, *, source: str) -> Rule:
    """Parse one rule file: exactly one static policy with the required annotations.

    Raises:
        BundleError: naming the file, when it does not parse, holds more than one
            policy, lacks an annotation, or its ``@id`` differs from its file name.
    """
    name = source
    stem = PurePosixPath(source).stem
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(text))
    except (ValueError, RuntimeError) as exc:
        raise BundleError(f"Cedar does not parse it: {exc}", source=name) from None
    policies = parsed.get("staticPolicies", {})
    if parsed.get("templates") or len(policies) != 1:
        raise BundleError("must hold exactly one policy (and no template)", source=name)
    (est,) = policies.values()
    notes: dict[str, str] = est.get("annotations", {})
    for key in REQUIRED_ANNOTATIONS:
        if not notes.get(key, "").strip():
            raise BundleError(f"the policy needs a non-empty @{key} annotation", source=name)
    if notes["id"] != stem:
        raise BundleError(f"@id({notes['id']!r}) must equal the file name {stem!r}", source=name)
    return Rule(
        id=notes["id"],
        effect=str(est["effect"]),
        legal_basis=notes["legal_basis"],
        public_message=notes["public_message"],
        source=text,
        est=est,
    )


def policy_set(rules: Sequence[Rule]) -> cedarpy.PolicySet:
    """The Cedar policy set of ``rules``, with each rule's id as its policy id.

    Policy ids are the rule ids, so Cedar's diagnostics name rules rather than positions.

    Raises:
        BundleError: when the rules do not form a policy set (e.g. a duplicate id).
    """
    est = {"staticPolicies": {r.id: r.est for r in rules}, "templates": {}, "templateLinks": []}
    if len(est["staticPolicies"]) != len(rules):
        raise BundleError("two rules share an id", source="rules/")
    try:
        return cedarpy.PolicySet.from_json_str(json.dumps(est))
    except ValueError as exc:
        raise BundleError(f"rules do not form a policy set: {exc}", source="rules/") from None
