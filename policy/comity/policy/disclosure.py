"""What a response must carry and what a node must withhold, as data from the bundle.

The bundle declares these; the node applies them (minimisation) and every response
carries the use restrictions. Nothing here touches records beyond a pure predicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from comity.policy._toml import parse_table

__all__ = ["Minimisation", "UseRestriction", "WithholdRule", "parse_minimisation", "parse_use_restrictions"]

WITHHOLD_ACTIONS = ("withhold_fields", "drop_record")


@dataclass(frozen=True, slots=True)
class UseRestriction:
    """A machine-readable condition on the use of disclosed data (mirrors ``comity.v1.UseRestriction``)."""

    code: str
    description: str
    legal_basis: str


@dataclass(frozen=True, slots=True)
class WithholdRule:
    """Withhold data about the responding country's own persons.

    A record is *about such a person* when any of ``subject_fields`` holds the responding
    country's code. Then ``action`` is ``"withhold_fields"`` (remove ``fields`` from the
    record) or ``"drop_record"`` (release nothing of it).
    """

    id: str
    description: str
    legal_basis: str
    subject_fields: tuple[str, ...]
    action: str
    fields: tuple[str, ...]

    def applies(self, record_fields: Mapping[str, str], responding_country: str) -> bool:
        """Whether this rule applies to a record with ``record_fields`` released by ``responding_country``."""
        return any(record_fields.get(f, "").upper() == responding_country for f in self.subject_fields)


@dataclass(frozen=True, slots=True)
class Minimisation:
    """The node's minimisation duties under a bundle."""

    authorised_categories_only: bool
    """Release only records whose category the order authorised (CONTENT only if CONTENT was)."""
    drop_outside_time_range: bool
    """Drop records observed outside the query's (and order's) time range."""
    withhold: tuple[WithholdRule, ...]
    """Rules for data about the responding country's own persons."""


def parse_minimisation(text: str, *, source: str) -> Minimisation:
    """Read ``minimisation.toml``.

    Raises:
        BundleError: naming a missing or mistyped field or an unknown action.
    """
    table = parse_table(text, source=source)
    rules: list[WithholdRule] = []
    for t in table.tables("withhold", required=False):
        rule = WithholdRule(
            id=t.text("id"),
            description=t.text("description"),
            legal_basis=t.text("legal_basis"),
            subject_fields=t.texts("subject_fields"),
            action=t.text("action"),
            fields=t.texts("fields", required=False),
        )
        if rule.action not in WITHHOLD_ACTIONS:
            raise t.error("action", f"must be one of {', '.join(WITHHOLD_ACTIONS)}")
        if rule.action == "withhold_fields" and not rule.fields:
            raise t.error("fields", "withhold_fields needs at least one field")
        t.done()
        rules.append(rule)
    m = Minimisation(
        authorised_categories_only=table.flag("authorised_categories_only"),
        drop_outside_time_range=table.flag("drop_outside_time_range"),
        withhold=tuple(rules),
    )
    table.done()
    return m


def parse_use_restrictions(text: str, *, source: str) -> tuple[UseRestriction, ...]:
    """Read ``use_restrictions.toml``: one ``[[restriction]]`` per restriction (at least one).

    Raises:
        BundleError: naming a missing field, a duplicate code, or an empty list.
    """
    table = parse_table(text, source=source)
    out: list[UseRestriction] = []
    for t in table.tables("restriction"):
        r = UseRestriction(
            code=t.text("code"), description=t.text("description"), legal_basis=t.text("legal_basis")
        )
        t.done()
        if any(o.code == r.code for o in out):
            raise t.error("code", f"duplicate restriction code {r.code}")
        out.append(r)
    if not out:
        raise table.error("restriction", "a bundle must declare at least one use restriction")
    table.done()
    return tuple(out)
