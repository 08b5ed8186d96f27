"""Rules: one Cedar policy per file, annotated with its stable id and legal source."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import cedarpy

from comity.policy.errors import BundleError

__all__ = ["REQUIRED_ANNOTATIONS", "SCOPE_SUFFIX", "Rule", "parse_rule", "policy_set"]

# The policy id of a permit's mirror image, a forbid that holds exactly when the permit's
# conditions do not: one Cedar call then reports a scope refusal beside every other rule.
SCOPE_SUFFIX = "#out-of-scope"

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

    @property
    def context_paths(self) -> list[tuple[str, ...]]:
        """The context attributes the rule reads, e.g. ``("offence", "known")``, in first-use order."""
        found: list[tuple[str, ...]] = []
        _collect_paths(self.est.get("conditions", []), found)
        return found


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
    policies = {r.id: r.est for r in rules}
    if len(policies) != len(rules):
        raise BundleError("two rules share an id", source="rules/")
    policies.update({r.id + SCOPE_SUFFIX: _out_of_scope(r.est) for r in rules if r.effect == "permit"})
    est = {"staticPolicies": policies, "templates": {}, "templateLinks": []}
    try:
        return cedarpy.PolicySet.from_json_str(json.dumps(est))
    except ValueError as exc:
        raise BundleError(f"rules do not form a policy set: {exc}", source="rules/") from None


def _out_of_scope(permit: dict[str, Any]) -> dict[str, Any]:
    """A forbid on every request whose condition is the negation of the permit (head and body)."""
    terms = [_head_term(var, permit[var]) for var in ("principal", "action", "resource")]
    for cond in permit.get("conditions", []):
        terms.append(cond["body"] if cond["kind"] == "when" else {"!": {"arg": cond["body"]}})
    body: dict[str, Any] = {"Value": True}
    for term in (t for t in terms if t is not None):
        body = term if body == {"Value": True} else {"&&": {"left": body, "right": term}}
    everything = {"op": "All"}
    return {
        "effect": "forbid",
        "principal": everything,
        "action": everything,
        "resource": everything,
        "conditions": [{"kind": "unless", "body": body}],
    }


def _head_term(var: str, head: dict[str, Any]) -> dict[str, Any] | None:
    """The permit's scope constraint on ``var`` as an expression (None: no constraint)."""
    left = {"Var": var}
    op = head.get("op")
    if op == "All":
        return None
    if op in ("==", "in") and "entity" in head:
        return {op: {"left": left, "right": {"Value": {"__entity": head["entity"]}}}}
    if op == "in" and "entities" in head:
        return {
            "in": {"left": left, "right": {"Set": [{"Value": {"__entity": e}} for e in head["entities"]]}}
        }
    if op == "is" and "in" not in head:
        return {"is": {"left": left, "entity_type": head["entity_type"]}}
    raise BundleError(
        f"the permit's {var} constraint is not supported here; move it into the when clause", source="rules/"
    )


def _context_path(node: Any) -> tuple[str, ...] | None:
    """``context.a.b`` in Cedar's JSON form as ``("a", "b")``; None for anything else."""
    attrs: list[str] = []
    while isinstance(node, dict) and "." in node:
        attrs.append(node["."]["attr"])
        node = node["."]["left"]
    if node == {"Var": "context"} and attrs:
        return tuple(reversed(attrs))
    return None


def _collect_paths(node: Any, found: list[tuple[str, ...]]) -> None:
    path = _context_path(node)
    if path is not None:
        # Keep the longest path only: context.order.present, not context.order too.
        if path not in found:
            found.append(path)
        return
    if isinstance(node, dict):
        for value in node.values():
            _collect_paths(value, found)
    elif isinstance(node, list):
        for value in node:
            _collect_paths(value, found)
