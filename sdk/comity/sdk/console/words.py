"""Words for what the log records: event kinds, outcomes, and each rule and check with its legal basis.

Rule and check texts come from two places, both read once at start-up: the check catalogue
(:mod:`comity.core.refusals`, every component's registered checks) and the rules of the policy
bundles shipped with Comity (their ``@public_message`` and ``@legal_basis``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["KIND_WORDS", "OUTCOME_WORDS", "RuleText", "load_rule_texts", "rule_name", "shipped_bundles"]

_log = logging.getLogger("comity.console")

KIND_WORDS: Mapping[str, str] = {
    "decision": "Gateway decision",
    "refused": "Refused before a policy decision",
    "throttled": "Refusals past a rate limit",
    "forwarded": "Forwarded to a node",
    "node_decision": "Node decision",
    "disclosed": "Disclosure",
    "failed": "Not completed",
    "emergency": "Emergency order used",
    "validated": "Emergency order reviewed",
    "undecodable": "Not a Comity event",
    "withheld": "Withheld: another agreement's entry",
}
OUTCOME_WORDS: Mapping[str, str] = {
    "ALLOW": "allowed",
    "DENY": "refused",
    "HIT": "hit",
    "NO_HIT": "no hit",
}
_PLACEHOLDER = re.compile(r"\{(\w+)[^}]*\}")


@dataclass(frozen=True, slots=True)
class RuleText:
    """What a rule or check requires, in words, and where it comes from."""

    code: str
    rule: str
    message: str
    legal_basis: str
    source: str


def rule_name(code: str) -> str:
    """``INDEPENDENT_AUTHORISATION`` → ``Independent authorisation``."""
    return code.replace("_", " ").capitalize()


def _catalogue() -> Iterable[RuleText]:
    from comity.core.refusal_docs import load_all_checks

    for check in load_all_checks().values():
        message = _PLACEHOLDER.sub(r"[\1]", check.message)
        yield RuleText(check.code, check.rule, message, check.legal_basis, "check catalogue")


def shipped_bundles() -> list[str]:
    """The names of the policy bundles shipped with Comity."""
    from pathlib import Path

    import comity.policy.bundle as bundle_module

    roots = bundle_module.bundle_roots(Path(bundle_module.__file__).resolve().parent)
    return sorted(
        {d.name for root in roots if root.is_dir() for d in root.iterdir() if (d / "bundle.toml").is_file()}
    )


def _bundles(names: Iterable[str]) -> Iterable[RuleText]:
    # Imported here: the SDK does not depend on the policy component at import time.
    from comity.policy.bundle import PolicyBundle, bundle_path
    from comity.policy.errors import BundleError

    for name in names:
        try:
            bundle = PolicyBundle.load(bundle_path(name))
        except BundleError as exc:
            _log.warning("bundle %s not read for rule texts: %s", name, exc.message)
            continue
        for rule in bundle.rules:
            yield RuleText(rule.id, rule.id, rule.public_message, rule.legal_basis, f"bundle {bundle.name}")


def load_rule_texts(bundles: Iterable[str] | None = None) -> dict[str, list[RuleText]]:
    """Every known code → its texts (a rule id may read differently in each country's bundle).

    ``bundles``: bundle names (default: every bundle shipped with Comity).
    """
    texts: dict[str, list[RuleText]] = {}
    for text in (*_bundles(shipped_bundles() if bundles is None else bundles), *_catalogue()):
        known = texts.setdefault(text.code, [])
        if all((t.message, t.legal_basis) != (text.message, text.legal_basis) for t in known):
            known.append(text)
    return texts
