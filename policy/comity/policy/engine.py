"""The policy engine: one bundle's rules evaluated by Cedar, fail-closed.

Cedar skips a ``forbid`` whose condition errors and decides on the rest, so an error
could turn into an allow. Here any error (a fact of the wrong type, a request the
schema rejects, an entity that does not exist, an evaluation error, an exception in
the engine) refuses the query with ``POLICY_ERROR``, and the details go to the
decision's ``errors`` for the server's log, never to the requester.

**Schema validation of requests.** Without the schema, Cedar does not refuse a request
whose context does not match it: an ``==`` between mismatched types is simply false, and
a ``forbid`` can be silently skipped. Validating every request costs about as much as
the evaluation itself, so the engine validates by *shape*: whether a request is valid
depends only on its entity types, its action and the type structure of its context
(record attribute names, value types, set element types), never on the values. The
request builder (:func:`~comity.policy.context.build_request`, from type-checked
:class:`QueryFacts`) gives a handful of shapes. The first request of each shape is
evaluated with and without the schema; only if it validates and both evaluations agree is
the shape trusted, and later requests of that shape are evaluated without the schema.
Every ``COMITY_POLICY_SCHEMA_EVERY``-th decision (default 16; 1 validates every decision,
as the test suite does) is still evaluated both ways; a disagreement is logged as an
error, refuses the query with ``POLICY_ERROR`` and withdraws the shape's trust.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import cedarpy

from comity.core.errors import RuleViolationInfo
from comity.policy.bundle import PolicyBundle
from comity.policy.context import build_request
from comity.policy.facts import QueryFacts
from comity.policy.rules import SCOPE_SUFFIX, Rule

__all__ = ["POLICY_ERROR", "SCHEMA_EVERY_ENV", "Decision", "PolicyEngine", "RuleExplanation"]

_log = logging.getLogger("comity.policy")
#: How often a decision of a trusted shape is still evaluated with the schema (1: always).
SCHEMA_EVERY_ENV = "COMITY_POLICY_SCHEMA_EVERY"
_DEFAULT_SCHEMA_EVERY = 16

POLICY_ERROR = "POLICY_ERROR"
_POLICY_ERROR_MESSAGE = (
    "The policy could not be evaluated for this query, so it was refused. "
    "The gateway operator has the details; retrying will not help until they fix it."
)
_POLICY_ERROR_BASIS = "Fail-closed evaluation of the agreement's rules"
_NOT_FATAL = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)


@dataclass(frozen=True)
class Decision:
    """The outcome of one policy decision.

    ``violations`` is what the requester may see (every rule that refused, with rules
    whose reason would reveal something about the target folded into one generic
    code). ``internal_reasons`` keeps the real rule ids, for the audit log.
    """

    allowed: bool
    violations: list[RuleViolationInfo]
    internal_reasons: list[str]
    bundle_digest: str
    bundle_version: str
    errors: list[str] = field(default_factory=list)
    """Evaluation errors behind a POLICY_ERROR refusal (server log only)."""

    @property
    def codes(self) -> list[str]:
        """The public codes of ``violations``."""
        return [v.code for v in self.violations]


@dataclass(frozen=True, slots=True)
class RuleExplanation:
    """One line of :meth:`PolicyEngine.explain`: whether a rule fired, and why."""

    rule_id: str
    fired: bool
    why: str


@dataclass(frozen=True, slots=True)
class _Outcome:
    allowed: bool
    reasons: list[str]
    errors: list[str]


class PolicyEngine:
    """Evaluates :class:`QueryFacts` against one :class:`PolicyBundle`.

    The bundle's policy set, schema and entities are parsed once at load; a decision
    only builds the request and calls Cedar with the cached handles. Thread-safe: it
    holds no mutable state.
    """

    def __init__(self, bundle: PolicyBundle, *, schema_every: int | None = None) -> None:
        """``schema_every``: evaluate every n-th decision with the schema as well (default: from
        ``COMITY_POLICY_SCHEMA_EVERY``, else 16); see the module docstring."""
        self.bundle = bundle
        self._forbids = [r for r in bundle.rules if r.effect == "forbid"]
        self._permit = bundle.permit
        self._out_of_scope = self._permit.id + SCOPE_SUFFIX
        self._schema_every = max(1, schema_every if schema_every is not None else _schema_every())
        self._decisions = itertools.count()
        self._trusted: set[Any] = set()  # request shapes proved valid against the schema

    def decide(self, facts: QueryFacts) -> Decision:
        """Decide ``facts``; never raises. Any error is a refusal with ``POLICY_ERROR``."""
        try:
            request = self.cedar_request(facts)
        except Exception as exc:
            return self._decision(_Outcome(False, [], [f"facts: {exc}"]))
        return self._decision(self._authorize(request))

    def cedar_request(self, facts: QueryFacts) -> dict[str, Any]:
        """The Cedar request the rules see for ``facts`` (for ``explain`` output and debugging).

        Raises:
            InvalidArgument: when a fact is missing, mistyped or out of range.
        """
        facts.check()
        return build_request(facts, self.bundle.catalogue, self.bundle.justification)

    def explain(self, facts: QueryFacts) -> list[RuleExplanation]:
        """Every rule of the bundle, in order, with whether it fired and why.

        ``fired`` means the rule refuses the query: for a forbid, its condition holds; for
        the permit, the query is outside the bundle's scope. A final ``POLICY_ERROR`` line
        appears when evaluation failed. For policy authors and legal officers only: it
        names the real rules (generic ones too) and the facts they read, so it must never
        be sent to a requester.
        """
        try:
            request = self.cedar_request(facts)
        except Exception as exc:
            return [RuleExplanation(POLICY_ERROR, True, f"facts: {exc}")]
        outcome = self._authorize(request)
        lines: list[RuleExplanation] = []
        for rule in self.bundle.rules:
            ids = (f"`{rule.id}`", f"`{rule.id}{SCOPE_SUFFIX}`")
            errors = [e for e in outcome.errors if any(i in e for i in ids)]
            if errors:
                fired, why = True, f"evaluation error: {'; '.join(errors)}"
            elif rule.effect == "permit":
                fired = self._out_of_scope in outcome.reasons
                why = rule.public_message if fired else "the query is within the bundle's scope"
            else:
                fired = rule.id in outcome.reasons
                why = rule.public_message if fired else "condition does not hold"
            lines.append(RuleExplanation(rule.id, fired, f"{why} [{_facts_read(rule, request)}]"))
        if outcome.errors:
            lines.append(RuleExplanation(POLICY_ERROR, True, "; ".join(outcome.errors)))
        return lines

    def _authorize(self, request: dict[str, Any]) -> _Outcome:
        try:
            shape = request_shape(request)
        except Exception as exc:  # not a request the builder makes: Cedar with the schema decides
            _log.error("policy request of unknown shape: %s", exc)
            shape = None
        sampled = next(self._decisions) % self._schema_every == 0
        if shape in self._trusted and not sampled:
            return self._evaluate(request, with_schema=False)
        checked = self._evaluate(request, with_schema=True)
        if shape is None or checked.errors:
            return checked
        unchecked = self._evaluate(request, with_schema=False)
        if _same(checked, unchecked):
            self._trusted.add(shape)
            return checked
        if shape in self._trusted:
            self._trusted.discard(shape)
            _log.error(
                "policy evaluation without the schema disagrees with the schema's for a trusted "
                "request shape (allowed %s vs %s, rules %s vs %s): refused, shape no longer trusted",
                checked.allowed, unchecked.allowed, checked.reasons, unchecked.reasons,
            )  # fmt: skip
            return _Outcome(False, [], ["engine: evaluation without the schema disagreed with the schema's"])
        return checked

    def _evaluate(self, request: dict[str, Any], *, with_schema: bool) -> _Outcome:
        b = self.bundle
        try:
            schema = b.schema if with_schema else None
            result = cedarpy.is_authorized(request, b.policy_set, b.entities, schema=schema)
            return _Outcome(result.allowed, list(result.diagnostics.reasons), list(result.diagnostics.errors))
        except _NOT_FATAL:
            raise
        except BaseException as exc:  # pyo3 panics derive from BaseException
            return _Outcome(False, [], [f"engine: {type(exc).__name__}: {exc}"])

    def _decision(self, outcome: _Outcome) -> Decision:
        fired = [r for r in self._forbids if r.id in outcome.reasons]
        reasons = [r.id for r in fired]
        violations: list[RuleViolationInfo] = []
        generic = self.bundle.manifest.generic
        for rule in fired:
            if rule.id not in generic.rules:
                violations.append(RuleViolationInfo(rule.id, rule.public_message, rule.legal_basis))
        if any(r.id in generic.rules for r in fired):
            violations.insert(0, RuleViolationInfo(generic.code, generic.message, generic.legal_basis))
        if outcome.errors:
            reasons.append(POLICY_ERROR)
            violations.append(RuleViolationInfo(POLICY_ERROR, _POLICY_ERROR_MESSAGE, _POLICY_ERROR_BASIS))
        allowed = outcome.allowed and not outcome.errors and self._permit.id in outcome.reasons
        if self._out_of_scope in outcome.reasons or (not allowed and not violations):
            # The permit (the bundle's scope) does not cover the query: a refusal of its own,
            # reported beside any forbid that fired so every reason comes at once.
            reasons.append(self._permit.id)
            violations.append(
                RuleViolationInfo(self._permit.id, self._permit.public_message, self._permit.legal_basis)
            )
        return Decision(
            allowed=allowed,
            violations=violations,
            internal_reasons=reasons,
            bundle_digest=self.bundle.digest,
            bundle_version=self.bundle.version,
            errors=list(outcome.errors),
        )


def _facts_read(rule: Rule, request: dict[str, Any]) -> str:
    """``name=value`` for each context attribute the rule reads, as the rule saw it."""
    shown = []
    for path in rule.context_paths:
        value: Any = request["context"]
        for attr in path:
            value = value.get(attr) if isinstance(value, dict) else None
        shown.append(f"{'.'.join(path)}={json.dumps(value)}")
    return ", ".join(shown)


def _schema_every() -> int:
    text = os.environ.get(SCHEMA_EVERY_ENV, "")
    try:
        return int(text) if text else _DEFAULT_SCHEMA_EVERY
    except ValueError:
        _log.error("%s=%r is not an integer: every decision is validated", SCHEMA_EVERY_ENV, text)
        return 1


def _same(a: _Outcome, b: _Outcome) -> bool:
    return a.allowed == b.allowed and sorted(a.reasons) == sorted(b.reasons) and not a.errors and not b.errors


def _type_of(value: Any) -> Any:
    """The Cedar type structure of a JSON value: what request validation depends on."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "long"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return ("set", frozenset(_type_of(v) for v in value))
    if isinstance(value, dict):
        return ("record", tuple((k, _type_of(value[k])) for k in sorted(value)))
    raise TypeError(f"no Cedar type for a {type(value).__name__}")


def request_shape(request: dict[str, Any]) -> Any:
    """What a request's schema validity depends on: entity types, the action, the context's types.

    Two requests of one shape are both valid against a schema or both invalid; the values
    (ids, strings, numbers, set members) play no part.
    """
    principal, action, resource = request["principal"], request["action"], request["resource"]
    return (
        str(principal["type"]),
        str(action["type"]),
        str(action["id"]),
        str(resource["type"]),
        _type_of(request["context"]),
    )
