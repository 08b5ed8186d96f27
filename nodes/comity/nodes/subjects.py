"""What the node's own records say about a person: the subject's country facts.

Before it answers, a node reads the records that the query's selectors identify and collects
the country facts (``FieldSpec.subject_fact``) of their subject: every nationality, residence
and other country any of those records states, as sets, so a dual national or a person who
moved is every one of their countries at once. A record counts only when a selector names its
subject (:data:`~comity.nodes.schema.SUBJECT`); a message that the selector matches as its
recipient says where its *sender* is from, and is left out. When the node cannot tell which
party a selector matched, the record counts (fail closed).

Reading fails closed: a record type the schema does not know, a country field missing from a
record (a column the store or the mapping does not have), a value that is not an ISO 3166-1
alpha-2 code, more matching records than the reader reads, or any error of the store raises
:class:`SubjectFactsUnreadable`, and the node refuses rather than answers. A store that cannot
be reached at all still raises its own ``Unavailable``: that is true of every query alike and
says nothing about the selector.

The same reading tells, for a released record, which incidental persons in it (the other party
of a message) are the responding country's own, so minimisation can withhold their fields.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from comity.core.errors import Unavailable
from comity.core.storage_failure import describe_failure
from comity.nodes.lookup import RecordSource
from comity.nodes.schema import SUBJECT, FieldType, Record, RecordType, Schema, Selector, SubjectFact

__all__ = [
    "MAX_SUBJECT_RECORDS",
    "OwnParties",
    "SubjectFacts",
    "SubjectFactsUnreadable",
    "SubjectReader",
    "names_subject",
    "record_facts",
]

#: The most records read to learn who a subject is; beyond it the facts are not known in full.
MAX_SUBJECT_RECORDS = 10_000

_CODE = re.compile(r"[A-Z]{2}")
_SPLIT = re.compile(r"[\s,;]+")


class SubjectFactsUnreadable(Exception):
    """The subject's country facts could not be read in full; the node must refuse.

    The message is for the sealed reason and the server's log, never for the requester.
    """


@dataclass(frozen=True, slots=True)
class SubjectFacts:
    """The countries the node's records tie a subject to (ISO 3166-1 alpha-2 codes)."""

    nationalities: frozenset[str] = frozenset()
    residences: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()
    """Other country facts: incorporation, location, or a country field of no declared role."""
    records: int = 0
    """How many of the subject's records were read."""

    def belongs_to(self, country: str) -> bool:
        """Whether any record ties the subject to ``country``."""
        return country.upper() in self.nationalities | self.residences | self.countries

    def merged(self, other: SubjectFacts) -> SubjectFacts:
        """The facts of both."""
        return SubjectFacts(
            self.nationalities | other.nationalities,
            self.residences | other.residences,
            self.countries | other.countries,
            self.records + other.records,
        )


def _codes(value: str, where: str) -> frozenset[str]:
    codes = frozenset(p for p in _SPLIT.split(value.strip().upper()) if p)
    bad = [c for c in codes if not _CODE.fullmatch(c)]
    if bad:
        raise SubjectFactsUnreadable(f"{where} holds a value that is not an ISO 3166-1 alpha-2 code")
    return codes


def _country_fields(rt: RecordType) -> list[tuple[str, SubjectFact]]:
    fields = [(f.name, f.subject_fact) for f in rt.subject_facts if f.subject_fact is not None]
    # A country field of the subject whose role nobody declared is still a country of theirs.
    fields += [
        (f.name, SubjectFact.COUNTRY)
        for f in rt.fields
        if f.type is FieldType.COUNTRY and f.subject_fact is None and f.party == SUBJECT
    ]
    return fields


def record_facts(record: Record, rt: RecordType) -> SubjectFacts:
    """The country facts one record states about its subject.

    Raises:
        SubjectFactsUnreadable: a declared country field is missing or not a country code.
    """
    found: dict[SubjectFact, frozenset[str]] = {}
    for name, fact in _country_fields(rt):
        value = record.fields.get(name)
        if value is None:
            raise SubjectFactsUnreadable(f"{rt.name} record lacks its {name} field")
        found[fact] = found.get(fact, frozenset()) | _codes(value, f"{rt.name}.{name}")
    return SubjectFacts(
        found.get(SubjectFact.NATIONALITY, frozenset()),
        found.get(SubjectFact.RESIDENCE, frozenset()),
        found.get(SubjectFact.COUNTRY, frozenset()),
        1,
    )


def _matched_parties(record: Record, rt: RecordType, selectors: Collection[Selector]) -> set[str | None]:
    wanted = {(s.type, s.value.casefold()) for s in selectors}
    return {
        f.party
        for f in rt.selector_fields
        if (f.selector, record.fields.get(f.name, "").casefold()) in wanted
    }


def _about_subject(record: Record, rt: RecordType, selectors: Collection[Selector]) -> bool:
    """Whether a selector names the record's subject (or the node cannot tell that it does not)."""
    parties = _matched_parties(record, rt, selectors)
    return not parties or SUBJECT in parties


def names_subject(record: Record, rt: RecordType, selector: Selector) -> bool:
    """Whether ``selector`` names ``record``'s subject (or the node cannot tell that it does not):
    whether the record's country facts count for that selector's subject."""
    return _about_subject(record, rt, (selector,))


def facts_from_records(
    records: Iterable[Record], selectors: Collection[Selector], schema: Schema
) -> SubjectFacts:
    """The subject facts of the records ``selectors`` matched (a pure function).

    Raises:
        SubjectFactsUnreadable: a record's type is unknown or its country fields unreadable.
    """
    facts = SubjectFacts()
    for record in records:
        rt = schema.get(record.record_type)
        if rt is None:
            raise SubjectFactsUnreadable(f"record type {record.record_type!r} is not in the schema")
        if _about_subject(record, rt, selectors):
            facts = facts.merged(record_facts(record, rt))
    return facts


class SubjectReader:
    """Reads a subject's country facts from the node's record source (SQLite, PostgreSQL, mapped)."""

    def __init__(
        self, source: RecordSource, schema: Schema, *, max_records: int = MAX_SUBJECT_RECORDS
    ) -> None:
        self._source = source
        self._schema = schema
        self._max = max_records

    def facts(self, selectors: Sequence[Selector]) -> SubjectFacts:
        """Every country fact the records identified by ``selectors`` state about their subject.

        All categories and all times count: what the node knows does not depend on what
        the query asks for.

        Raises:
            SubjectFactsUnreadable: the facts cannot be read in full (see the module docstring).
            Unavailable: the store cannot be reached.
        """
        try:
            with self._source.lookup(selectors, limit=self._max) as stream:
                facts = facts_from_records(stream, selectors, self._schema)
                truncated = stream.truncated
        except (SubjectFactsUnreadable, Unavailable):
            raise
        except Exception as exc:
            raise SubjectFactsUnreadable(f"the store failed while reading: {describe_failure(exc)}") from exc
        if truncated:
            raise SubjectFactsUnreadable(
                f"more than {self._max} records match; the facts are not known in full"
            )
        return facts


class OwnParties:
    """Which persons in a released record are the responding country's own (one query's cache).

    A party that the query's selectors name is the target, already checked; the record's
    subject is judged by the record's own country fields; any other party (a message's
    recipient) by the records the node holds about them. A party whose facts cannot be read
    is withheld (fail closed).
    """

    def __init__(
        self, reader: SubjectReader, schema: Schema, *, country: str, targets: Collection[Selector]
    ) -> None:
        self._reader = reader
        self._schema = schema
        self._country = country.upper()
        self._targets = {(s.type, s.value) for s in targets}
        self._known: dict[frozenset[tuple[int, str]], bool] = {}

    def __call__(self, record: Record) -> frozenset[str]:
        """The parties of ``record`` whose fields must be withheld."""
        rt = self._schema.get(record.record_type)
        if rt is None:
            return frozenset({SUBJECT})
        return frozenset(p for p in rt.parties if self._own(record, rt, p))

    def _own(self, record: Record, rt: RecordType, party: str) -> bool:
        selectors = [
            Selector(f.selector, value)
            for f in rt.party_fields(party)
            if f.selector is not None and (value := record.fields.get(f.name))
        ]
        if any((s.type, s.value) in self._targets for s in selectors):
            return False
        try:
            if party == SUBJECT:
                return record_facts(record, rt).belongs_to(self._country)
            return self._party_is_own(selectors)
        except SubjectFactsUnreadable:
            return True

    def _party_is_own(self, selectors: list[Selector]) -> bool:
        if not selectors:
            return False
        key = frozenset((int(s.type), s.value) for s in selectors)
        if key not in self._known:
            self._known[key] = self._reader.facts(selectors).belongs_to(self._country)
        return self._known[key]
