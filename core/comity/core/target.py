"""The target facts a legal order attests, and the checks that make them impossible to leave out.

An order carries, inside the authority's signature, what the requester knows about the target
(``comity.v1.TargetFacts``): every nationality, every residence, every location (each a set of
ISO 3166-1 alpha-2 codes, never empty), whether the target is a natural or a legal person and,
for a legal person, its country of incorporation. Nothing here has a default: a missing field is
a refusal, so the targeting rule can never decide on a value nobody attested.

Status codes:

- an order signed without ``target`` (the legacy single-valued ``attestation``, or neither) is
  ``FAILED_PRECONDITION`` under INDEPENDENT_AUTHORISATION: it was well-formed when its authority
  signed it, and no change the investigator can make to the query fixes it; only the authority
  can, by signing it again with the target facts. Retrying the same request never helps.
- a ``target`` field that is empty, not an assigned code, or repeated is ``INVALID_ARGUMENT``
  under NO_TARGETING, naming the field. These checks are not generic: they say only what the
  order's own text is, nothing about what a node holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import grpc

from comity.core.iso3166 import is_assigned
from comity.core.refusals import Check, refuse, register
from comity.v1 import comity_pb2 as pb

__all__ = [
    "COUNTRY_SETS",
    "KINDS",
    "TargetProblem",
    "check_target",
    "parse_kind",
    "target_facts",
    "target_problem",
]

#: The repeated country fields of TargetFacts, in the order they are checked.
COUNTRY_SETS = ("nationalities", "residences", "locations")
#: Kinds as written in order files and on the command line, to their wire value.
KINDS = {"natural-person": pb.NATURAL_PERSON, "legal-person": pb.LEGAL_PERSON}

_TARGETING_BASIS = "18 U.S.C. §2523(a)(2), (b)(4)(A)–(B)"
_AUTHORISATION_BASIS = "18 U.S.C. §2523(b)(4)(D)(v)"
_RESIGN = "have the authority correct the order and sign it again (`comity order sign`)"

register(
    Check(
        "ORDER_TARGET_MISSING",
        "INDEPENDENT_AUTHORISATION",
        grpc.StatusCode.FAILED_PRECONDITION,
        "Legal order {order_id!r} carries no target facts: it was signed in the format before "
        "nationalities, residences, locations and the kind of person were required. Have it re-signed "
        "by its authority ({authority}) with the target facts (`comity order sign --nationality ...`); "
        "an order is never read with defaults.",
        _AUTHORISATION_BASIS,
    ),
    Check(
        "ORDER_TARGET_LEGACY",
        "INDEPENDENT_AUTHORISATION",
        grpc.StatusCode.FAILED_PRECONDITION,
        "Legal order {order_id!r} carries the legacy single-valued attestation beside its target facts, "
        "so what the authority attested is ambiguous. Have it re-signed by its authority ({authority}) "
        "with the target facts only.",
        _AUTHORISATION_BASIS,
    ),
    Check(
        "ORDER_TARGET_EMPTY",
        "NO_TARGETING",
        grpc.StatusCode.INVALID_ARGUMENT,
        "Legal order {order_id!r}: {field} is empty. The order must attest every {what} of the target "
        f"(ISO 3166-1 alpha-2 codes, e.g. 'GB'); {_RESIGN}.",
        _TARGETING_BASIS,
    ),
    Check(
        "ORDER_TARGET_CODE",
        "NO_TARGETING",
        grpc.StatusCode.INVALID_ARGUMENT,
        "Legal order {order_id!r}: {field} is {value!r}, which is not an assigned ISO 3166-1 alpha-2 "
        f"code (two upper-case letters, e.g. 'GB'); {_RESIGN}.",
        _TARGETING_BASIS,
    ),
    Check(
        "ORDER_TARGET_REPEATED",
        "NO_TARGETING",
        grpc.StatusCode.INVALID_ARGUMENT,
        f"Legal order {{order_id!r}}: {{field}} repeats {{value!r}}; list each country once: {_RESIGN}.",
        _TARGETING_BASIS,
    ),
    Check(
        "ORDER_TARGET_KIND",
        "NO_TARGETING",
        grpc.StatusCode.INVALID_ARGUMENT,
        "Legal order {order_id!r}: {field} {value}. The kind is NATURAL_PERSON, or LEGAL_PERSON with "
        f"the country of incorporation in target.incorporated_in; {_RESIGN}.",
        _TARGETING_BASIS,
    ),
)

_WHAT = {"nationalities": "nationality", "residences": "residence", "locations": "location"}


@dataclass(frozen=True, slots=True)
class TargetProblem:
    """What is wrong with a TargetFacts: the check code, the field (``target.residences[1]``), a value."""

    code: str
    field: str
    value: str = ""

    @property
    def message(self) -> str:
        """The problem in words, without the order's id (for order files and the CLI)."""
        if self.code == "ORDER_TARGET_EMPTY":
            return f"{self.field} is empty: attest at least one ISO 3166-1 alpha-2 code, e.g. 'GB'"
        if self.code == "ORDER_TARGET_CODE":
            return f"{self.value!r} is not an assigned ISO 3166-1 alpha-2 code (e.g. 'GB')"
        if self.code == "ORDER_TARGET_REPEATED":
            return f"{self.value!r} is listed twice; list each country once"
        return f"{self.field} {self.value}"


def _shown(value: str) -> str:
    # The value comes from a signed order, not a selector; cut it so a refusal stays short.
    return value if len(value) <= 12 else value[:12] + "…"


def target_problem(target: pb.TargetFacts) -> TargetProblem | None:
    """The first problem of ``target`` in field order, or None when every field is well-formed.

    Well-formed says nothing about whether the agreement allows the target: the NO_TARGETING
    rule decides that from these sets.
    """
    for name in COUNTRY_SETS:
        problem = _country_set(f"target.{name}", getattr(target, name))
        if problem is not None:
            return problem
    if target.kind not in (pb.NATURAL_PERSON, pb.LEGAL_PERSON):
        return TargetProblem("ORDER_TARGET_KIND", "target.kind", "is missing")
    if target.kind == pb.LEGAL_PERSON:
        if not target.incorporated_in:
            return TargetProblem("ORDER_TARGET_KIND", "target.incorporated_in", "is empty for a legal person")
        if not is_assigned(target.incorporated_in):
            shown = _shown(target.incorporated_in)
            return TargetProblem("ORDER_TARGET_CODE", "target.incorporated_in", shown)
    elif target.incorporated_in:
        return TargetProblem("ORDER_TARGET_KIND", "target.incorporated_in", "is set for a natural person")
    return None


def _country_set(field: str, codes: Sequence[str]) -> TargetProblem | None:
    if not codes:
        return TargetProblem("ORDER_TARGET_EMPTY", field)
    seen: set[str] = set()
    for i, code in enumerate(codes):
        if not is_assigned(code):
            return TargetProblem("ORDER_TARGET_CODE", f"{field}[{i}]", _shown(code))
        if code in seen:
            return TargetProblem("ORDER_TARGET_REPEATED", f"{field}[{i}]", code)
        seen.add(code)
    return None


def check_target(order: pb.LegalOrder, *, authority: str) -> None:
    """Refuse an order whose target facts are absent, ambiguous or malformed.

    Raises:
        FailedPrecondition: ORDER_TARGET_MISSING / ORDER_TARGET_LEGACY (re-sign the order).
        InvalidArgument: ORDER_TARGET_EMPTY, _CODE, _REPEATED or _KIND, naming the field.
    """
    if not order.HasField("target"):
        raise refuse("ORDER_TARGET_MISSING", order_id=order.order_id, authority=authority)
    if order.HasField("attestation"):
        raise refuse("ORDER_TARGET_LEGACY", order_id=order.order_id, authority=authority)
    problem = target_problem(order.target)
    if problem is not None:
        what = _WHAT.get(problem.field.removeprefix("target.").split("[")[0], "")
        raise refuse(
            problem.code, order_id=order.order_id, field=problem.field, value=problem.value, what=what
        )


def parse_kind(text: str) -> pb.TargetKind:
    """``natural-person`` or ``legal-person`` (also ``NATURAL_PERSON``, ``legal_person``).

    Raises:
        ValueError: for anything else.
    """
    kind = KINDS.get(text.strip().lower().replace("_", "-"))
    if kind is None:
        raise ValueError(f"target kind must be {' or '.join(KINDS)}, not {text!r}")
    return kind


def target_facts(
    *,
    nationalities: Iterable[str],
    residences: Iterable[str],
    locations: Iterable[str],
    kind: str | pb.TargetKind = "natural-person",
    incorporated_in: str = "",
    not_for_third_government: bool,
) -> pb.TargetFacts:
    """A checked TargetFacts, for order tooling, the SDK and tests.

    Codes are taken as given (no case folding): the signed order must say exactly what the
    authority attested.

    Raises:
        ValueError: naming the first field that is empty, not an assigned code, or repeated.
    """
    target = pb.TargetFacts(
        nationalities=list(nationalities),
        residences=list(residences),
        locations=list(locations),
        kind=parse_kind(kind) if isinstance(kind, str) else kind,
        incorporated_in=incorporated_in,
        not_for_third_government=not_for_third_government,
    )
    problem = target_problem(target)
    if problem is not None:
        raise ValueError(f"{problem.field}: {problem.message}")
    return target
