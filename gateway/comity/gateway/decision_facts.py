"""What a decision entry keeps of the policy's facts, so the decision replays from the log.

Every field of :class:`~comity.policy.facts.QueryFacts` is either logged in clear (``facts`` of
the decision entry: countries, agencies, kinds, counts, flags, the order's fields and times)
or, where it is personal data, as a salted commitment whose opening is stored beside the log:

- ``selectors``: one commitment per selector (``selector_commitments``);
- ``justification_facts`` and ``justification_link``: ``justification_commitment``;
- ``target_nationalities``, ``target_residences``, ``target_locations``, ``target_kind`` and
  ``target_incorporated_in``: ``target_commitment``.

A field added to ``QueryFacts`` must be placed in one of the two groups here
(:data:`COMMITTED` or logged in clear); a test fails until it is.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from comity.policy.facts import QueryFacts

__all__ = ["COMMITTED", "NODE_ONLY", "clear_facts", "justification_of", "target_of"]

#: Facts logged only as commitments (personal data about the target or the case).
COMMITTED = frozenset(
    {
        "selectors",
        "justification_facts",
        "justification_link",
        "target_nationalities",
        "target_residences",
        "target_locations",
        "target_kind",
        "target_incorporated_in",
    }
)


#: Facts only a node has (what its own records say about the subject). The gateway never holds
#: them, and a node keeps them in the sealed part of its decision, never in a clear log field.
NODE_ONLY = frozenset({"subject"})


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    return value


def clear_facts(facts: QueryFacts) -> dict[str, Any]:
    """The facts that are not personal data, as JSON values (times as RFC 3339 UTC)."""
    if facts.subject is not None:
        raise ValueError("a node's subject facts never go into a clear decision entry")
    hidden = COMMITTED | NODE_ONLY
    return {f.name: _json(getattr(facts, f.name)) for f in dataclasses.fields(facts) if f.name not in hidden}


def justification_of(facts: QueryFacts) -> tuple[str, str]:
    """The justification's two texts, for its commitment."""
    return facts.justification_facts, facts.justification_link


def target_of(facts: QueryFacts) -> dict[str, Any]:
    """The requester's attestation about the target, as the policy saw it, for its commitment."""
    return {
        "nationalities": list(facts.target_nationalities),
        "residences": list(facts.target_residences),
        "locations": list(facts.target_locations),
        "kind": facts.target_kind,
        "incorporated_in": list(facts.target_incorporated_in),
    }
