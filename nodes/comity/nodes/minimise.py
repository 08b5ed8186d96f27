"""Minimisation: release only what the order covers.

A pure function of the records, the authorised data categories, the order's time range and
the node's withholding rules (no I/O, no clock), so it can be tested exhaustively:

1. a record whose category is not authorised is dropped;
2. a record observed outside the time range is dropped;
3. a withholding rule whose predicate holds for the record's subject (its nationality and
   residence fields, read before anything is removed) withholds the rule's fields, or the
   whole record when the rule names no fields;
4. the fields of every party the caller names for the record (an incidental person of the
   responding country, say the other party of a message) are withheld;
5. a field that says which country a person belongs to (``FieldSpec.subject_country``: a
   declared subject fact or any field of type ``country``) is never released: the withhold
   list is the schema's, so a new record type cannot forget one;
6. of what is left, only fields whose category is authorised are released; a field the
   schema does not declare is never released (fail closed).

Content fields are therefore released only when CONTENT is authorised, whatever record they
sit in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from comity.nodes.lookup import TimeRange
from comity.nodes.schema import DataCategory, Record, Schema

__all__ = ["MinimisationScope", "Minimiser", "PartyWithholding", "WithholdingRule", "minimise"]

#: ``applies(nationality, residence)``: ISO 3166-1 alpha-2 codes, None where the record has none.
SubjectPredicate = Callable[[str | None, str | None], bool]
#: The parties (``FieldSpec.party``) whose fields to withhold from one record.
PartyWithholding = Callable[[Record], Collection[str]]


def _no_parties(_record: Record) -> Collection[str]:
    return ()


@dataclass(frozen=True)
class WithholdingRule:
    """Withhold ``fields`` (all of the record when None) from records whose subject matches.

    Use :meth:`own_persons` for the agreement's rule about the responding country's own
    nationals and residents.
    """

    name: str
    applies: SubjectPredicate
    fields: frozenset[str] | None = None

    @classmethod
    def own_persons(
        cls,
        country: str,
        *,
        fields: Iterable[str] | None = None,
        withhold_unknown: bool = False,
    ) -> WithholdingRule:
        """Withhold data about nationals or residents of ``country`` (the responding country).

        With ``withhold_unknown`` a record that names neither nationality nor residence is
        treated as being about one of the country's own persons.
        """
        code = country.upper()

        def applies(nationality: str | None, residence: str | None) -> bool:
            if nationality is None and residence is None:
                return withhold_unknown
            return code in (nationality, residence)

        return cls(f"own-persons-{code}", applies, None if fields is None else frozenset(fields))


class MinimisationScope(Protocol):
    """What a query was authorised for (the node's admitted query has these attributes)."""

    @property
    def categories(self) -> Collection[DataCategory]: ...

    @property
    def time_range(self) -> TimeRange | None: ...


def _subject(record: Record, schema: Schema) -> tuple[str | None, str | None]:
    rt = schema.get(record.record_type)
    if rt is None:
        return None, None
    nationality = record.fields.get(rt.nationality_field) if rt.nationality_field else None
    residence = record.fields.get(rt.residence_field) if rt.residence_field else None
    return nationality or None, residence or None


def _release(
    record: Record,
    schema: Schema,
    categories: Collection[DataCategory],
    rules: Sequence[WithholdingRule],
    parties: PartyWithholding,
) -> Record | None:
    rt = schema.get(record.record_type)
    if rt is None or record.category not in categories:
        return None
    withheld: set[str] = set(rt.subject_country_fields)
    for party in parties(record):
        withheld.update(f.name for f in rt.party_fields(party))
    nationality, residence = _subject(record, schema)
    for rule in rules:
        if rule.applies(nationality, residence):
            if rule.fields is None:
                return None
            withheld |= rule.fields
    fields: dict[str, str] = {}
    for name, value in record.fields.items():
        spec = rt.field(name)
        if spec is not None and spec.category in categories and name not in withheld:
            fields[name] = value
    return dataclasses.replace(record, fields=fields)


def minimise(
    records: Iterable[Record],
    *,
    schema: Schema,
    categories: Collection[DataCategory],
    time_range: TimeRange | None = None,
    withholding: Sequence[WithholdingRule] = (),
    parties: PartyWithholding = _no_parties,
) -> list[Record]:
    """The released form of ``records``, in their order (see the module docstring for the steps)."""
    authorised = frozenset(categories)
    released = []
    for record in records:
        if time_range is not None and not time_range.contains(record.observed_at):
            continue
        out = _release(record, schema, authorised, withholding, parties)
        if out is not None:
            released.append(out)
    return released


class Minimiser:
    """:func:`minimise` bound to a node's schema and withholding rules."""

    def __init__(self, schema: Schema, withholding: Sequence[WithholdingRule] = ()) -> None:
        self.schema = schema
        self.withholding = tuple(withholding)

    def apply(
        self, records: Iterable[Record], scope: MinimisationScope, parties: PartyWithholding = _no_parties
    ) -> list[Record]:
        """Release ``records`` for a query authorised for ``scope.categories`` and ``scope.time_range``,
        without the fields of the ``parties`` named for each record."""
        return minimise(
            records,
            schema=self.schema,
            categories=scope.categories,
            time_range=scope.time_range,
            withholding=self.withholding,
            parties=parties,
        )
