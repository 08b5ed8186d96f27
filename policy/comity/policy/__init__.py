"""The policy engine: Cedar bundles of the agreement's rules, evaluated fail-closed.

Typical use::

    bundle = PolicyBundle.load(bundle_path("us-ca-agreement"))   # validates and self-tests
    engine = PolicyEngine(bundle)
    decision = engine.decide(facts)                              # never raises
"""

from comity.policy.bundle import GenericRefusal, Manifest, PolicyBundle, bundle_digest, bundle_path
from comity.policy.catalogue import Offence, OffenceCatalogue
from comity.policy.disclosure import Minimisation, UseRestriction, WithholdRule
from comity.policy.engine import POLICY_ERROR, Decision, PolicyEngine, RuleExplanation
from comity.policy.errors import BundleError
from comity.policy.facts import QueryFacts
from comity.policy.rules import Rule

__all__ = [
    "POLICY_ERROR",
    "BundleError",
    "Decision",
    "GenericRefusal",
    "Manifest",
    "Minimisation",
    "Offence",
    "OffenceCatalogue",
    "PolicyBundle",
    "PolicyEngine",
    "QueryFacts",
    "Rule",
    "RuleExplanation",
    "UseRestriction",
    "WithholdRule",
    "bundle_digest",
    "bundle_path",
]
