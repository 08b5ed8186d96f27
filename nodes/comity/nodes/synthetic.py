"""Realistic synthetic records for demos, tests and benchmarks.

``generate(country, n_people=200, seed=7)`` makes the records a node of ``country`` would hold
about 200 people: nationals and residents of that country and one other, each with a subscriber account, IP
connection logs, message metadata, some stored message content and, for a few, a firearm
trace. The same arguments always give the same records.

The output is JSON Lines, one record per line::

    {"record_id": "us-ip-000012-3", "record_type": "ip_connection_log",
     "observed_at": "2025-04-02T17:03:11Z",
     "fields": {"account_id": "XA-ACC-00000012", "ip_address": "203.0.113.7", ...}}

``record_id`` is unique within a store; ``record_type`` names a type of the schema
(:func:`comity.nodes.schema.default_schema`); ``observed_at`` is ISO 8601 in UTC and equals
the record type's timestamp field; ``fields`` maps field names to strings. Selector values are
already in normalised form. How each country's records look (locale, phone numbers, providers)
is data, in ``data/synthetic.toml``; a country it does not list gets its ``[default]``.

:attr:`SyntheticData.well_known` lists a few subjects whose selectors certainly match records,
with their nationality and residence, so a demo can run allowed and refused queries.
"""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
from faker import Faker

from comity.core.errors import InvalidArgument
from comity.nodes.schema import SelectorType

__all__ = ["Person", "SyntheticData", "generate"]

_DATA = Path(__file__).resolve().parent / "data" / "synthetic.toml"


@dataclass(frozen=True, slots=True)
class _Style:
    """How one country's synthetic records look (a table of ``data/synthetic.toml``)."""

    locale: str
    calling_code: str
    area_codes: tuple[str, ...]
    first_digits: tuple[int, int]
    rest_digits: int
    avoid_n11: bool
    providers: tuple[str, ...]
    region: str
    other: str = ""


def _styles() -> tuple[_Style, dict[str, _Style]]:
    with _DATA.open("rb") as f:
        data = tomllib.load(f)

    def style(t: dict[str, Any]) -> _Style:
        return _Style(
            locale=t["locale"],
            calling_code=t["calling_code"],
            area_codes=tuple(t["area_codes"]),
            first_digits=(t["first_digits"][0], t["first_digits"][1]),
            rest_digits=t["rest_digits"],
            avoid_n11=t["avoid_n11"],
            providers=tuple(t["providers"]),
            region=t["region"],
            other=t.get("other", ""),
        )

    return style(data["default"]), {c: style(t) for c, t in data["country"].items()}


_DEFAULT, _STYLES = _styles()


def _style(country: str) -> _Style:
    return _STYLES.get(country, _DEFAULT)


def _other(country: str) -> str:
    """The second country of a node's records: the data file's, else the first listed other one."""
    named = _style(country).other
    return named or next(c for c in _STYLES if c != country)


_FIREARMS = (
    ("Glock", "19", "9mm"),
    ("Smith & Wesson", "M&P Shield", "9mm"),
    ("Ruger", "LCP II", ".380 ACP"),
    ("Sig Sauer", "P365", "9mm"),
    ("Remington", "870", "12 gauge"),
)
_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
_SPAN_SECONDS = 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Person:
    """A synthetic subject and the selectors that find their records."""

    name: str
    nationality: str
    residence: str
    selectors: dict[SelectorType, str]


@dataclass
class SyntheticData:
    """Generated records (JSON-Lines-ready dicts), the people behind them, and a few well-known subjects."""

    country: str
    records: list[dict[str, Any]]
    people: list[Person]
    well_known: list[Person] = field(default_factory=list)

    def lines(self) -> Iterator[str]:
        """The records as JSON Lines (without trailing newlines)."""
        for r in self.records:
            yield json.dumps(r, ensure_ascii=False, sort_keys=True)

    def write_jsonl(self, path: Path | str) -> Path:
        """Write the records to ``path`` as JSON Lines and return the path."""
        path = Path(path)
        with path.open("w", encoding="utf-8") as out:
            for line in self.lines():
                out.write(line + "\n")
        return path


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Generator:
    def __init__(self, country: str, seed: int, other: str) -> None:
        self.country = country
        self.other = other
        self.rng = random.Random(f"{country}:{seed}")
        self.fakers: dict[str, Faker] = {}
        for i, c in enumerate(sorted({country, other})):
            fk = Faker(_style(c).locale)
            fk.seed_instance(seed * 2 + i)
            self.fakers[c] = fk
        self.prefix = country.lower()
        self.records: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- identifiers

    def phone(self, country: str) -> str:
        style = _style(country)
        while True:
            number = (
                f"+{style.calling_code}{self.rng.choice(style.area_codes)}"
                f"{self.rng.randint(*style.first_digits)}"
                f"{self.rng.randint(0, 10**style.rest_digits - 1):0{style.rest_digits}d}"
            )
            parsed = phonenumbers.parse(number, None)
            exchange = number[5:8] if style.avoid_n11 else ""  # N11 exchanges are service codes
            if phonenumbers.is_valid_number(parsed) and not exchange.endswith("11"):
                return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    def imei(self) -> str:
        digits = [self.rng.randint(0, 9) for _ in range(14)]
        total = 0
        for i, d in enumerate(digits):
            if i % 2 == 1:
                d *= 2
                d = d - 9 if d > 9 else d
            total += d
        return "".join(map(str, digits)) + str((10 - total % 10) % 10)

    def moment(self) -> datetime:
        return _EPOCH + timedelta(seconds=self.rng.randrange(_SPAN_SECONDS))

    def dealer_licence(self) -> str:
        r = self.rng
        return f"{r.randint(1, 9)}-{r.randint(10, 99)}-{r.randint(10000, 99999)}"

    def birth_date(self, min_age: int) -> str:
        # Not Faker's date_of_birth: that counts back from today, which would change the output daily.
        oldest = date(1946, 1, 1)
        span = (date(2025 - min_age, 1, 1) - oldest).days
        return (oldest + timedelta(days=self.rng.randrange(span))).isoformat()

    def ipv4(self, fk: Faker) -> str:
        return str(fk.ipv4_public())

    # ----------------------------------------------------------------- people

    def origin(self, index: int) -> tuple[str, str]:
        """(nationality, residence): the first four people cover every combination."""
        combos = [
            (self.country, self.country),
            (self.other, self.other),
            (self.other, self.country),
            (self.country, self.other),
        ]
        if index < len(combos):
            return combos[index]
        roll = self.rng.random()
        if roll < 0.65:
            return combos[0]
        if roll < 0.80:
            return combos[1]
        if roll < 0.93:
            return combos[2]
        return combos[3]

    def person(self, index: int) -> Person:
        nationality, residence = self.origin(index)
        fk = self.fakers[residence]
        first, last = fk.first_name(), fk.last_name()
        handle = f"{first}.{last}{index}".lower().replace("'", "").replace(" ", "")
        domain = self.rng.choice(("example.com", "example.org", "example.net", "mail.example"))
        selectors = {
            SelectorType.ACCOUNT_ID: f"{self.country}-ACC-{index:08d}",
            SelectorType.USERNAME: handle.replace(".", "_"),
            SelectorType.EMAIL: f"{handle}@{domain}",
            SelectorType.PHONE: self.phone(residence),
            SelectorType.IP_ADDRESS: self.ipv4(fk),
            SelectorType.DEVICE_ID: fk.uuid4(),
            SelectorType.IMEI: self.imei(),
        }
        return Person(f"{first} {last}", nationality, residence, selectors)

    # ----------------------------------------------------------------- records

    def add(self, kind: str, rid: str, at: datetime, fields: dict[str, str], ts_field: str) -> None:
        fields[ts_field] = _iso(at)
        self.records.append(
            {"record_id": rid, "record_type": kind, "observed_at": _iso(at), "fields": fields}
        )

    def subject(self, p: Person) -> dict[str, str]:
        return {"subject_nationality": p.nationality, "subject_residence": p.residence}

    def account(self, i: int, p: Person) -> None:
        fk = self.fakers[p.residence]
        s = p.selectors
        fields = {
            "account_id": s[SelectorType.ACCOUNT_ID],
            "provider": self.rng.choice(_style(self.country).providers),
            "username": s[SelectorType.USERNAME],
            "email": s[SelectorType.EMAIL],
            "phone": s[SelectorType.PHONE],
            "full_name": p.name,
            "date_of_birth": self.birth_date(18),
            "street_address": str(fk.street_address()).replace("\n", ", "),
            "city": fk.city(),
            "region": str(getattr(fk, _style(p.residence).region)()),
            "postal_code": fk.postcode(),
            **self.subject(p),
        }
        at = _EPOCH - timedelta(days=self.rng.randint(30, 3000))
        self.add("subscriber_account", f"{self.prefix}-sub-{i:06d}", at, fields, "created_at")

    def connections(self, i: int, p: Person, n: int) -> None:
        s = p.selectors
        fk = self.fakers[p.residence]
        for j in range(n):
            # Mostly the person's usual address and handset, sometimes another one.
            usual = j == 0 or self.rng.random() < 0.7
            fields = {
                "account_id": s[SelectorType.ACCOUNT_ID],
                "ip_address": s[SelectorType.IP_ADDRESS] if usual else self.ipv4(fk),
                "port": str(self.rng.choice((443, 993, 5222, self.rng.randint(1024, 65535)))),
                "device_id": s[SelectorType.DEVICE_ID],
                "imei": s[SelectorType.IMEI] if usual else self.imei(),
                "duration_seconds": str(self.rng.randint(5, 7200)),
                **self.subject(p),
            }
            self.add(
                "ip_connection_log", f"{self.prefix}-ip-{i:06d}-{j}", self.moment(), fields, "connected_at"
            )

    def messages(self, i: int, p: Person, people: list[Person], n: int, with_content: bool) -> None:
        s = p.selectors
        fk = self.fakers[p.residence]
        for j in range(n):
            peer = people[self.rng.randrange(len(people))]
            at = self.moment()
            header = {
                "message_id": f"<{self.prefix}.{i}.{j}@{s[SelectorType.EMAIL].split('@')[1]}>",
                "sender_account": s[SelectorType.ACCOUNT_ID],
                "sender_email": s[SelectorType.EMAIL],
                "recipient_email": peer.selectors[SelectorType.EMAIL],
            }
            meta = {
                **header,
                "size_bytes": str(self.rng.randint(400, 250_000)),
                "client_ip": s[SelectorType.IP_ADDRESS],
                **self.subject(p),
            }
            self.add("message_metadata", f"{self.prefix}-msg-{i:06d}-{j}", at, meta, "sent_at")
            if with_content and j == 0:
                content = {
                    **header,
                    "subject_line": str(fk.sentence(nb_words=5)).rstrip("."),
                    "body": "\n\n".join(fk.paragraphs(nb=2)),
                    **self.subject(p),
                }
                self.add("message_content", f"{self.prefix}-txt-{i:06d}-{j}", at, content, "sent_at")

    def firearm(self, i: int, p: Person) -> None:
        fk = self.fakers[p.residence]
        make, model, caliber = self.rng.choice(_FIREARMS)
        serial = "".join(self.rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(8))
        vin = "".join(self.rng.choice(_VIN_CHARS) for _ in range(17))
        p.selectors[SelectorType.FIREARM_SERIAL] = serial
        p.selectors[SelectorType.VEHICLE_VIN] = vin
        bought: date = fk.date_between(start_date=date(2015, 1, 1), end_date=date(2024, 12, 31))
        fields = {
            "serial_number": serial,
            "make": make,
            "model": model,
            "caliber": caliber,
            "dealer_licence": self.dealer_licence(),
            "purchaser_name": p.name,
            "purchaser_date_of_birth": self.birth_date(21),
            "purchased_on": bought.isoformat(),
            "recovery_city": self.fakers[self.country].city(),
            "vehicle_vin": vin,
            **self.subject(p),
        }
        self.add("firearm_trace", f"{self.prefix}-gun-{i:06d}", self.moment(), fields, "recovered_at")


def generate(country: str, n_people: int, seed: int, *, other: str = "") -> SyntheticData:
    """Synthetic records a node in ``country`` holds about ``n_people`` people.

    ``other`` is the second country among its people (default: the one the data file names).

    Reproducible: the same arguments give the same records. The first four people are the
    :attr:`SyntheticData.well_known` subjects (one per combination of nationality and residence,
    each with every record type, a firearm trace included).
    """
    if len(country) != 2 or not country.isalpha() or not country.isupper():
        raise InvalidArgument(f"not a country code: {country!r}", hint="an ISO 3166-1 alpha-2 code")
    if n_people < 1:
        raise InvalidArgument("n_people must be at least 1")
    g = _Generator(country, seed, other or _other(country))
    people = [g.person(i) for i in range(n_people)]
    well_known = people[:4]
    for i, p in enumerate(people):
        known = i < len(well_known)
        g.account(i, p)
        g.connections(i, p, g.rng.randint(2, 6))
        g.messages(i, p, people, g.rng.randint(1, 5), with_content=known or g.rng.random() < 0.2)
        if known or g.rng.random() < 0.05:
            g.firearm(i, p)
    return SyntheticData(country=country, records=g.records, people=people, well_known=well_known)
