"""What a response must carry and what a node must withhold, as data from the bundle.

The bundle declares these; the node applies them (minimisation) and every response
carries the use restrictions. Nothing here touches records beyond a pure predicate.
"""

from __future__ import annotations

from dataclasses import dataclass

from comity.policy._toml import parse_table

__all__ = ["Minimisation", "UseRestriction", "WithholdRule", "parse_minimisation", "parse_use_restrictions"]

# The only subject a withholding rule is about today: the responding country's own persons.
WITHHOLD_SUBJECTS = ("responding_country_persons",)


@dataclass(frozen=True, slots=True)
class UseRestriction:
    """A machine-readable condition on the use of disclosed data (mirrors ``comity.v1.UseRestriction``)."""

    code: str
    description: str
    legal_basis: str


@dataclass(frozen=True, slots=True)
class WithholdRule:
    """Withhold data about the responding country's own nationals and residents.

    A record is about such a person when its subject's nationality or residence is the
    responding country (or, with ``withhold_unknown``, when the record names neither).
    Then ``fields`` are removed from it, or the whole record when ``fields`` is empty.
    A node maps this onto its own minimiser, e.g.
    ``WithholdingRule.own_persons(country, fields=rule.fields or None,
    withhold_unknown=rule.withhold_unknown)``.
    """

    id: str
    description: str
    legal_basis: str
    about: str
    """Whose data: ``"responding_country_persons"``."""
    fields: tuple[str, ...]
    """Record fields to withhold; empty: withhold the whole record."""
    withhold_unknown: bool
    """Treat a record that names neither nationality nor residence as about such a person."""

    def applies(self, nationality: str | None, residence: str | None, *, responding_country: str) -> bool:
        """Whether the rule applies to a record whose subject has ``nationality`` and ``residence``."""
        if not nationality and not residence:
            return self.withhold_unknown
        code = responding_country.upper()
        return code in ((nationality or "").upper(), (residence or "").upper())


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
            about=t.text("about"),
            fields=t.texts("fields", required=False),
            withhold_unknown=t.flag("withhold_unknown", False),
        )
        if rule.about not in WITHHOLD_SUBJECTS:
            raise t.error("about", f"must be one of {', '.join(WITHHOLD_SUBJECTS)}")
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
