"""The facts a policy decision is made from.

A :class:`QueryFacts` is filled by the gateway (or a node) from *verified* sources only:
the verified investigator token, the verified signed query, the verified legal order,
the quota counters and the clock. Nothing in it is taken from an unverified claim.
It holds plain Python values so a caller can build it without knowing Cedar; the
engine derives the Cedar context from it (offence lookup, justification analysis).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from types import UnionType
from typing import Any, get_args, get_origin, get_type_hints

from comity.core.errors import InvalidArgument
from comity.core.iso3166 import is_assigned
from comity.policy.subject import KnownSubject

__all__ = ["QueryFacts"]

# Integers are bounded well inside Cedar's signed 64-bit Long so that no fact can make
# a rule's arithmetic overflow; a larger value is a caller's bug.
_MAX_INT = 2**53
# Attested country sets: each code assigned, each once, so no spelling ("us", "U.S.") can slip a
# responding country past the targeting rule's comparison.
_COUNTRY_SETS = (
    "target_nationalities",
    "target_residences",
    "target_locations",
    "target_incorporated_in",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryFacts:
    """Everything the agreement's rules decide on, from verified sources only.

    Country fields hold ISO 3166-1 alpha-2 codes (``"US"``, ``"CA"``). Datetimes must be
    timezone-aware. Integers are non-negative. Text fields are passed as received (the
    engine only measures them; they never reach the policy engine verbatim).
    """

    # --- direction
    requesting_country: str
    """Country of the requesting agency (from the federation file, via the verified token)."""
    responding_country: str
    """Country whose node holds the records (the query's target node)."""

    # --- who asks
    requesting_agency: str
    """Federation member id of the requesting agency, e.g. ``"us.fbi"``."""
    investigator: str
    """Verified investigator id (the token's subject)."""

    # --- what is asked
    kind: str
    """``"HIT_CHECK"`` (hit / no hit and a reference) or ``"FETCH"`` (the records)."""
    selectors: tuple[tuple[str, str], ...]
    """Exact selectors as (type, normalised value) pairs; type is a ``SelectorType`` name."""
    categories: tuple[str, ...]
    """Requested data categories: ``"SUBSCRIBER"``, ``"TRAFFIC"``, ``"CONTENT"``."""
    time_range_days: int
    """Length of the requested time range in whole days, rounded up."""
    max_records: int
    """Upper bound on records the investigator asked for (0: the node's own cap)."""
    has_hit_reference: bool
    """Whether the query carries a hit reference from an earlier HIT_CHECK, or names the
    PRIVATE_HIT_CHECK it follows (``private_precedent``; the node checks either)."""
    private_precedent: str = ""
    """The query id of the PRIVATE_HIT_CHECK a FETCH names as the check it follows ("" if none)."""
    case_reference: str
    """The requesting agency's case reference."""
    justification_facts: str
    """The articulable facts of the justification."""
    justification_link: str
    """The justification's link of the target to the offence."""
    justification_reused: bool | None = None
    """Whether the gateway found the facts text used by the same agency under another case
    reference (its keyed signature store); None where no such store is kept (a node), and then
    absent from the Cedar context, so a bundle whose schema needs it refuses."""

    # --- the verified legal order
    order_id: str
    """Order id; empty when the query carries no order."""
    order_offence_code: str
    """Offence code from the issuing country's catalogue, e.g. ``"18 USC 1030(a)(7)"``."""
    order_issuing_country: str
    """Country of the authority that issued the order."""
    order_authorisation_type: str
    """``"judicial"``, ``"independent"`` or ``"administrative"``."""
    order_emergency: bool
    """Whether the order was issued on the emergency track (imminent threat to life)."""
    order_valid_from: dt.datetime
    """Start of the order's validity window (inclusive)."""
    order_valid_until: dt.datetime
    """End of the order's validity window (exclusive)."""
    order_covers_selectors: bool
    """Whether the order names every selector of the query."""
    order_covers_categories: bool
    """Whether the order authorises every data category of the query."""

    # --- the requester's attestation about the target (the signed order's target facts)
    # Sets of ISO 3166-1 alpha-2 codes exactly as signed; an empty set means nothing was attested
    # (the targeting rule refuses it). Nothing here is ever defaulted to a placeholder.
    target_nationalities: tuple[str, ...]
    """Every nationality of the target the order attests."""
    target_residences: tuple[str, ...]
    """Every country of residence the order attests."""
    target_locations: tuple[str, ...]
    """Every country the target is believed to be located in."""
    target_kind: str
    """``"NATURAL_PERSON"`` or ``"LEGAL_PERSON"`` as signed (anything else: the kind is unknown)."""
    target_incorporated_in: tuple[str, ...]
    """A legal person's country of incorporation (one code); empty for a natural person."""
    not_for_third_government: bool
    """The requester attests the query is not made for the responding or a third government."""

    # --- quota counters, before this query
    investigator_queries_today: int
    """Queries this investigator already made today (UTC), not counting this one."""
    agency_queries_today: int
    """Queries the requesting agency already made today (UTC), not counting this one."""

    # --- the emergency track's post-hoc validation, from the gateway's record of emergency uses
    emergency_overdue_orders: int
    """The requesting agency's emergency orders past their validation deadline and not validated."""
    emergency_order_rejected: bool
    """The query's order is an emergency order that an authority reviewed and did not confirm."""

    # --- the clock
    now: dt.datetime
    """The decision time (injected, never read from the clock inside the engine)."""

    # --- what the responding node's records say (a node's decision only)
    subject: KnownSubject | None = None
    """The target as the node's own records show it; None at the gateway, which cannot know.
    A node bundle's schema requires it, so a node decision without it is refused."""

    @property
    def selector_count(self) -> int:
        """How many selectors the query names."""
        return len(self.selectors)

    def check(self) -> None:
        """Check every field's type and range.

        Raises:
            InvalidArgument: naming the first field that is missing, mistyped, negative,
                a naive datetime, or an attested country set holding a code that is not an
                assigned ISO 3166-1 alpha-2 code or is repeated.
        """
        hints = _field_types()
        for f in dataclasses.fields(self):
            _check_value(f.name, getattr(self, f.name), hints[f.name])
        for name in _COUNTRY_SETS:
            codes: tuple[str, ...] = getattr(self, name)
            for code in codes:
                if not is_assigned(code):
                    raise InvalidArgument(f"fact {name} holds {code[:12]!r}, not an ISO 3166-1 alpha-2 code")
            if len(set(codes)) != len(codes):
                raise InvalidArgument(f"fact {name} lists a country more than once")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> QueryFacts:
        """Build facts from a mapping of field names (e.g. a parsed TOML table).

        Lists become tuples; selectors are ``[type, value]`` pairs. Every field is
        required, so a forgotten fact is an error rather than a silent default.

        Raises:
            InvalidArgument: naming a missing, unknown or mistyped field.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise InvalidArgument(f"unknown fact(s): {', '.join(unknown)}", hint=f"known facts: {names}")
        missing = [n for n in names if n not in data and n not in _OPTIONAL]
        if missing:
            raise InvalidArgument(f"missing fact(s): {', '.join(missing)}")
        values = {n: _tuples(data[n]) for n in names if n in data}
        if isinstance(data.get("subject"), Mapping):
            values["subject"] = KnownSubject.from_mapping(data["subject"])
        facts = cls(**values)
        facts.check()
        return facts


# Facts only some deciders have, and private_precedent, which no rule reads (has_hit_reference
# carries it to the rules) and most queries lack; every other fact is required.
_OPTIONAL = frozenset({"subject", "justification_reused", "private_precedent"})


def _tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value


_HINTS: dict[str, Any] = {}


def _field_types() -> dict[str, Any]:
    if not _HINTS:
        _HINTS.update(get_type_hints(QueryFacts))
    return _HINTS


def _check_value(name: str, value: Any, hint: Any) -> None:
    origin = get_origin(hint)
    if origin is UnionType:  # ``T | None``: a fact some deciders do not know
        if value is None:
            return
        (hint,) = (a for a in get_args(hint) if a is not type(None))
        origin = get_origin(hint)
    if origin is tuple:
        if not isinstance(value, tuple):
            raise InvalidArgument(f"fact {name} must be a tuple, not {type(value).__name__}")
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            for item in value:
                _check_value(name, item, args[0])
        elif len(args) != len(value):
            raise InvalidArgument(f"fact {name} must have {len(args)} items, not {len(value)}")
        else:
            for item, arg in zip(value, args, strict=True):
                _check_value(name, item, arg)
        return
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"fact {name} must be an integer, not {type(value).__name__}")
        if not 0 <= value <= _MAX_INT:
            raise InvalidArgument(f"fact {name} must be between 0 and {_MAX_INT}")
    elif name == "subject":
        if value is not None:
            if not isinstance(value, KnownSubject):
                raise InvalidArgument("fact subject must be the node's KnownSubject")
            value.check()
    elif hint is dt.datetime:
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise InvalidArgument(f"fact {name} must be a timezone-aware datetime")
    elif not isinstance(value, hint):
        raise InvalidArgument(f"fact {name} must be {hint.__name__}, not {type(value).__name__}")
