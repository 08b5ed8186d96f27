"""The record model: datasets with a declared schema.

A node holds records of a few *record types* (a subscriber account, an IP connection log,
...). Each type declares its typed fields, which fields are *selectors* (exact identifiers an
investigator may query by, with their ``comity.v1.SelectorType``), the *data category* of each
field (subscriber < traffic < content), the field carrying the record's time, the *party* each
field is about, and the fields that say which country the record's subject belongs to.

Two field properties carry the agreement's targeting and minimisation duties:

- ``subject_fact`` marks a field that states a country fact about the record's subject (its
  nationality, residence, or another country it is tied to). The node reads these to know
  whether a target is one of its own country's persons, and never releases them: a field of
  type ``country`` is treated the same, whatever it is called (:attr:`FieldSpec.subject_country`).
- ``party`` says whose identity a field carries. :data:`SUBJECT` is the person the record is
  kept for (the account holder, the sender of a stored message); another name (``recipient``)
  is a person who appears in the record incidentally; None is a field about the event itself
  (a time, a size, a port). The subject's country fields describe :data:`SUBJECT` only.

Field values are strings, as on the wire (``comity.v1.Record.fields`` is ``map<string,
string>``); the field type says what the string must look like.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from comity.core.errors import ConfigError
from comity.core.selectors import Selector, SelectorType

__all__ = [
    "SUBJECT",
    "DataCategory",
    "FieldSpec",
    "FieldType",
    "Record",
    "RecordType",
    "Schema",
    "Selector",
    "SelectorType",
    "SubjectFact",
    "default_schema",
]

#: The party a record is kept for: the person its country fields describe.
SUBJECT = "subject"


class DataCategory(enum.IntEnum):
    """``comity.v1.DataCategory``: the tiers, in increasing sensitivity (values are the wire numbers)."""

    SUBSCRIBER = 1
    TRAFFIC = 2
    CONTENT = 3


class FieldType(enum.StrEnum):
    """What a field's string value must look like."""

    STRING = "string"  # a short single-line text
    TEXT = "text"  # free text, may span lines (message bodies)
    INTEGER = "integer"  # a decimal integer
    TIMESTAMP = "timestamp"  # ISO 8601 with a UTC offset
    DATE = "date"  # ISO 8601 calendar date
    COUNTRY = "country"  # ISO 3166-1 alpha-2, upper case


class SubjectFact(enum.StrEnum):
    """Which country fact about the record's subject a field states (ISO 3166-1 alpha-2)."""

    NATIONALITY = "nationality"
    RESIDENCE = "residence"
    COUNTRY = "country"  # another country the subject is tied to (incorporation, location)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a record type.

    ``category`` is the tier of the information in the field; minimisation releases a field
    only when its category is authorised. ``selector`` is set when the field is an exact
    identifier that lookups may use. ``party`` is whose identity the field carries
    (:data:`SUBJECT`, another party's name, or None for a fact about the event).
    ``subject_fact`` marks a country fact about the subject (never released).
    """

    name: str
    type: FieldType
    category: DataCategory
    selector: SelectorType | None = None
    required: bool = False
    party: str | None = SUBJECT
    subject_fact: SubjectFact | None = None

    def __post_init__(self) -> None:
        if self.subject_fact is not None and self.type is not FieldType.COUNTRY:
            raise ConfigError("a subject fact must be a country field", field=f"{self.name}.subject_fact")
        if self.subject_fact is not None and self.party != SUBJECT:
            raise ConfigError(f"a subject fact describes the party {SUBJECT!r}", field=f"{self.name}.party")
        if self.selector is not None and self.party is None:
            raise ConfigError("a selector identifies a party; name it", field=f"{self.name}.party")

    @property
    def subject_country(self) -> bool:
        """Whether the field says which country a person belongs to: never released.

        True for every declared subject fact and for every field of type ``country``, so a
        country field whose role nobody declared is withheld too (fail closed).
        """
        return self.subject_fact is not None or self.type is FieldType.COUNTRY


@dataclass(frozen=True, slots=True)
class RecordType:
    """A kind of record and its declared fields.

    ``category`` is the record's tier as a whole (``comity.v1.Record.category``); lookups
    filter on it. ``timestamp_field`` holds the record's ``observed_at``.
    ``nationality_field`` and ``residence_field`` name the fields (ISO 3166-1 alpha-2) that say
    who the record's subject is, as far as the holder knows; naming one marks that field as
    the subject fact (``FieldSpec.subject_fact``), and a field so marked is named here.
    """

    name: str
    category: DataCategory
    fields: tuple[FieldSpec, ...]
    timestamp_field: str
    nationality_field: str | None = None
    residence_field: str | None = None
    description: str = ""
    _by_name: Mapping[str, FieldSpec] = field(init=False, repr=False, compare=False)
    _selectors: tuple[FieldSpec, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", self._marked_fields())
        by_name: dict[str, FieldSpec] = {}
        for spec in self.fields:
            if spec.name in by_name:
                raise ConfigError(f"field {spec.name!r} is declared twice", field=f"{self.name}.fields")
            by_name[spec.name] = spec
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_selectors", tuple(f for f in self.fields if f.selector is not None))
        ts = by_name.get(self.timestamp_field)
        if ts is None or ts.type is not FieldType.TIMESTAMP:
            raise ConfigError(
                f"timestamp field {self.timestamp_field!r} must be a declared timestamp field",
                field=f"{self.name}.timestamp_field",
            )
        for attr in ("nationality_field", "residence_field"):
            name = getattr(self, attr)
            if name is not None and (name not in by_name or by_name[name].type is not FieldType.COUNTRY):
                raise ConfigError(f"{name!r} must be a declared country field", field=f"{self.name}.{attr}")
        for attr, fact in (
            ("nationality_field", SubjectFact.NATIONALITY),
            ("residence_field", SubjectFact.RESIDENCE),
        ):
            marked = [f.name for f in self.fields if f.subject_fact is fact]
            if len(marked) > 1:
                raise ConfigError(f"more than one {fact} field: {marked}", field=f"{self.name}.fields")
            if marked and getattr(self, attr) is None:
                object.__setattr__(self, attr, marked[0])

    def _marked_fields(self) -> tuple[FieldSpec, ...]:
        # The record type's nationality and residence fields are its subject facts.
        facts = {self.nationality_field: SubjectFact.NATIONALITY, self.residence_field: SubjectFact.RESIDENCE}
        out = []
        for spec in self.fields:
            fact = facts.get(spec.name)
            if fact is not None and spec.subject_fact is None and spec.type is FieldType.COUNTRY:
                spec = dataclasses.replace(spec, subject_fact=fact, party=SUBJECT)
            out.append(spec)
        return tuple(out)

    @property
    def subject_facts(self) -> tuple[FieldSpec, ...]:
        """The fields stating a country fact about the record's subject."""
        return tuple(f for f in self.fields if f.subject_fact is not None)

    @property
    def subject_country_fields(self) -> frozenset[str]:
        """Every field that says which country a person belongs to (never released)."""
        return frozenset(f.name for f in self.fields if f.subject_country)

    def party_fields(self, party: str) -> tuple[FieldSpec, ...]:
        """The fields carrying ``party``'s identity."""
        return tuple(f for f in self.fields if f.party == party)

    @property
    def parties(self) -> tuple[str, ...]:
        """The parties the record's fields identify, :data:`SUBJECT` first when present."""
        seen = dict.fromkeys(f.party for f in self.fields if f.party is not None)
        return tuple(sorted(seen, key=lambda p: (p != SUBJECT, p)))

    def field(self, name: str) -> FieldSpec | None:
        """The declared field called ``name``, or None."""
        return self._by_name.get(name)

    @property
    def selector_fields(self) -> tuple[FieldSpec, ...]:
        """The fields that are selectors."""
        return self._selectors


class Schema:
    """A dataset's declared schema: its record types by name."""

    def __init__(self, record_types: Iterable[RecordType]) -> None:
        self._types: dict[str, RecordType] = {}
        for rt in record_types:
            if rt.name in self._types:
                raise ConfigError(f"record type {rt.name!r} is declared twice", field="record_types")
            self._types[rt.name] = rt
        if not self._types:
            raise ConfigError("a schema needs at least one record type", field="record_types")

    def __iter__(self) -> Iterator[RecordType]:
        return iter(self._types.values())

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def get(self, name: str) -> RecordType | None:
        """The record type called ``name``, or None."""
        return self._types.get(name)

    @property
    def record_type_names(self) -> tuple[str, ...]:
        """The declared record types' names, in declaration order."""
        return tuple(self._types)

    def selector_types(self) -> frozenset[SelectorType]:
        """Every selector type some record type can be found by."""
        return frozenset(f.selector for rt in self for f in rt.fields if f.selector is not None)


@dataclass(frozen=True, slots=True)
class Record:
    """One stored record: what a store returns and minimisation filters.

    ``observed_at`` is timezone-aware (UTC); ``fields`` holds string values (selector fields in
    their normalised form).
    """

    record_id: str
    record_type: str
    category: DataCategory
    observed_at: datetime
    fields: Mapping[str, str]
    dataset: str = "default"


def _f(
    name: str,
    type_: FieldType,
    category: DataCategory,
    selector: SelectorType | None = None,
    *,
    required: bool = False,
    party: str | None = SUBJECT,
) -> FieldSpec:
    return FieldSpec(name, type_, category, selector, required, party)


def _subject() -> tuple[FieldSpec, ...]:
    # Who the subject is counts as subscriber information whatever record it sits in.
    s = DataCategory.SUBSCRIBER
    return (
        FieldSpec("subject_nationality", FieldType.COUNTRY, s, subject_fact=SubjectFact.NATIONALITY),
        FieldSpec("subject_residence", FieldType.COUNTRY, s, subject_fact=SubjectFact.RESIDENCE),
    )


def _subscriber_account() -> RecordType:
    s, t = DataCategory.SUBSCRIBER, FieldType
    return RecordType(
        name="subscriber_account",
        category=s,
        description="An account holder's identity as registered with a provider.",
        fields=(
            _f("account_id", t.STRING, s, SelectorType.ACCOUNT_ID, required=True),
            _f("provider", t.STRING, s, required=True),
            _f("username", t.STRING, s, SelectorType.USERNAME),
            _f("email", t.STRING, s, SelectorType.EMAIL),
            _f("phone", t.STRING, s, SelectorType.PHONE),
            _f("full_name", t.STRING, s, required=True),
            _f("date_of_birth", t.DATE, s),
            _f("street_address", t.STRING, s),
            _f("city", t.STRING, s),
            _f("region", t.STRING, s),
            _f("postal_code", t.STRING, s),
            _f("created_at", t.TIMESTAMP, s, required=True),
            *_subject(),
        ),
        timestamp_field="created_at",
        nationality_field="subject_nationality",
        residence_field="subject_residence",
    )


def _ip_connection_log() -> RecordType:
    tr, t = DataCategory.TRAFFIC, FieldType
    return RecordType(
        name="ip_connection_log",
        category=tr,
        description="One network session of an account: address, port, device and duration.",
        fields=(
            _f("account_id", t.STRING, tr, SelectorType.ACCOUNT_ID),
            _f("ip_address", t.STRING, tr, SelectorType.IP_ADDRESS),
            _f("port", t.INTEGER, tr),
            _f("device_id", t.STRING, tr, SelectorType.DEVICE_ID),
            _f("imei", t.STRING, tr, SelectorType.IMEI),
            _f("connected_at", t.TIMESTAMP, tr, required=True),
            _f("duration_seconds", t.INTEGER, tr),
            *_subject(),
        ),
        timestamp_field="connected_at",
        nationality_field="subject_nationality",
        residence_field="subject_residence",
    )


def _message_header(category: DataCategory) -> tuple[FieldSpec, ...]:
    # A stored message is kept for its sender's account: the sender is the record's subject
    # (its country fields are the sender's), the recipient an incidental party.
    t = FieldType
    return (
        _f("message_id", t.STRING, category, required=True),
        _f("sender_account", t.STRING, category, SelectorType.ACCOUNT_ID),
        _f("sender_email", t.STRING, category, SelectorType.EMAIL),
        _f("recipient_email", t.STRING, category, SelectorType.EMAIL, party="recipient"),
        _f("sent_at", t.TIMESTAMP, category, required=True, party=None),
    )


def _message_metadata() -> RecordType:
    tr, t = DataCategory.TRAFFIC, FieldType
    return RecordType(
        name="message_metadata",
        category=tr,
        description="Who sent a message to whom, when, from where and how large (no content).",
        fields=(
            *_message_header(tr),
            _f("size_bytes", t.INTEGER, tr, party=None),
            _f("client_ip", t.STRING, tr, SelectorType.IP_ADDRESS),
            *_subject(),
        ),
        timestamp_field="sent_at",
        nationality_field="subject_nationality",
        residence_field="subject_residence",
    )


def _message_content() -> RecordType:
    c, t = DataCategory.CONTENT, FieldType
    return RecordType(
        name="message_content",
        category=c,
        description="A stored message: its header (traffic) and its subject line and body (content).",
        fields=(
            *_message_header(DataCategory.TRAFFIC),
            _f("subject_line", t.STRING, c, party=None),
            _f("body", t.TEXT, c, party=None),
            *_subject(),
        ),
        timestamp_field="sent_at",
        nationality_field="subject_nationality",
        residence_field="subject_residence",
    )


def _firearm_trace() -> RecordType:
    s, t = DataCategory.SUBSCRIBER, FieldType
    return RecordType(
        name="firearm_trace",
        category=s,
        description="A recovered firearm traced to its first retail purchaser.",
        fields=(
            _f("serial_number", t.STRING, s, SelectorType.FIREARM_SERIAL, required=True),
            _f("make", t.STRING, s, required=True),
            _f("model", t.STRING, s),
            _f("caliber", t.STRING, s),
            _f("dealer_licence", t.STRING, s),
            _f("purchaser_name", t.STRING, s),
            _f("purchaser_date_of_birth", t.DATE, s),
            _f("purchased_on", t.DATE, s),
            _f("recovered_at", t.TIMESTAMP, s, required=True),
            _f("recovery_city", t.STRING, s),
            _f("vehicle_vin", t.STRING, s, SelectorType.VEHICLE_VIN),
            *_subject(),
        ),
        timestamp_field="recovered_at",
        nationality_field="subject_nationality",
        residence_field="subject_residence",
    )


def default_schema() -> Schema:
    """The built-in schema: subscriber accounts, IP connection logs, message metadata, stored
    message content and firearm traces."""
    return Schema(
        [
            _subscriber_account(),
            _ip_connection_log(),
            _message_metadata(),
            _message_content(),
            _firearm_trace(),
        ]
    )
