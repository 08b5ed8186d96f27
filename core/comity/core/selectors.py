"""Selectors: the kinds of exact identifier, and one canonical form for each.

The gateway (to compare a query with its order and to commit to selectors in the log) and
each node (to look records up by exact comparison with the values stored at ingestion) go
through the same :func:`normalise`. Anything that is not plainly an exact identifier is
refused with :class:`InvalidSelector`, which names the selector by position and type and
never repeats its value:

- empty values, values over the type's length limit;
- control and format characters, non-ASCII characters (every selector type here is ASCII, so
  a look-alike letter from another script is refused rather than guessed at), and any text
  that Unicode NFKC normalisation would change (full-width digits, ligatures);
- wildcards (``*``, ``%``, ``?``) and characters outside the type's strict character set,
  which keeps SQL metacharacters (quotes, ``;``, ``--``, backslashes) out of every value;
- e-mail addresses, phone numbers, IP addresses, IMEIs and VINs that are not valid.

Canonical forms: e-mail addresses, user names and device ids in lower case; phone numbers in
E.164 (``phonenumbers``, default region = the node's country); IP addresses as ``ipaddress``
prints them (IPv4-mapped IPv6 as IPv4); firearm serials and VINs in upper case.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
import phonenumbers

from comity.core import refusals
from comity.core.errors import InvalidArgument

__all__ = ["MAX_LENGTH", "InvalidSelector", "Selector", "SelectorType", "normalise", "normalise_selectors"]


class SelectorType(enum.IntEnum):
    """``comity.v1.SelectorType``: the kinds of exact identifier (values are the wire numbers)."""

    EMAIL = 1
    PHONE = 2
    ACCOUNT_ID = 3
    IP_ADDRESS = 4
    DEVICE_ID = 5
    FIREARM_SERIAL = 6
    USERNAME = 7
    IMEI = 8
    VEHICLE_VIN = 9


@dataclass(frozen=True, slots=True)
class Selector:
    """An exact identifier to look records up by; ``value`` is expected in normalised form."""

    type: SelectorType
    value: str


_BASIS = "18 U.S.C. §2523(b)(4)(D)(ii); Prüm Decision 2008/615 (individual cases)"


def _check(code: str, message: str) -> refusals.Check:
    return refusals.Check(code, "PARTICULARITY", grpc.StatusCode.INVALID_ARGUMENT, message, _BASIS)


refusals.register(
    _check("SELECTOR_TYPE", "a selector's type is not one of the known selector types"),
    _check("SELECTOR_EMPTY", "a selector's value is empty; give the exact identifier"),
    _check("SELECTOR_LENGTH", "a selector's value is longer than its type allows"),
    _check(
        "SELECTOR_CHARACTERS",
        "a selector's value holds control, format or non-ASCII characters; re-type it in plain ASCII",
    ),
    _check(
        "SELECTOR_PATTERN",
        "a selector is a wildcard, range or list; selectors are exact identifiers of one person, "
        "account, address or device",
    ),
    _check("SELECTOR_FORMAT", "a selector's value is not a valid identifier of its type"),
)


class InvalidSelector(InvalidArgument):
    """A selector value is malformed or not exact; names the selector by position and type.

    ``check`` is the stable check code (``SELECTOR_PATTERN``, ``SELECTOR_FORMAT``, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        position: int | None,
        selector_type: str,
        hint: str | None = None,
        check: str = "SELECTOR_FORMAT",
    ):
        where = (
            f"selector {position} ({selector_type})" if position is not None else f"{selector_type} selector"
        )
        super().__init__(f"{where}: {message}", hint=hint, violations=[refusals.violation(check)])
        self.position = position
        self.selector_type = selector_type
        self.check = check


#: Longest accepted input per selector type, before any normalisation.
MAX_LENGTH: dict[SelectorType, int] = {
    SelectorType.EMAIL: 254,
    SelectorType.PHONE: 32,
    SelectorType.ACCOUNT_ID: 128,
    SelectorType.IP_ADDRESS: 45,
    SelectorType.DEVICE_ID: 128,
    SelectorType.FIREARM_SERIAL: 32,
    SelectorType.USERNAME: 64,
    SelectorType.IMEI: 20,
    SelectorType.VEHICLE_VIN: 17,
}

_WILDCARDS = frozenset("*%?")
_ASCII_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL_LOCAL = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*")
_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PHONE_CHARS = re.compile(r"\+?[0-9 ().-]+")
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._:-]*[A-Za-z0-9])?")
_DEVICE_ID = re.compile(r"[a-z0-9](?:[a-z0-9._:-]*[a-z0-9])?")
_USERNAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?")
_SERIAL = re.compile(r"[A-Z0-9](?:[A-Z0-9-]*[A-Z0-9])?")
_VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
_IMEI_SEPARATORS = re.compile(r"[ -]")


class _Refused(Exception):
    """Internal: why a value was refused, turned into InvalidSelector with its position."""

    def __init__(self, reason: str, hint: str | None = None, check: str = "SELECTOR_FORMAT") -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint
        self.check = check


def _screen(value: object, limit: int) -> str:
    """Checks common to every type; returns the value without surrounding spaces."""
    if not isinstance(value, str):
        raise _Refused("value must be a string")
    if len(value) > limit:
        raise _Refused(
            f"value is {len(value)} characters long, the limit is {limit}", check="SELECTOR_LENGTH"
        )
    # ASCII has no format characters, so its controls are all there is to look for (fast path).
    if (
        _ASCII_CONTROLS.search(value)
        if value.isascii()
        else any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value)
    ):
        raise _Refused("value contains control or format characters", check="SELECTOR_CHARACTERS")
    if not value.isascii():
        hint = "re-type it in plain ASCII" if unicodedata.normalize("NFKC", value).isascii() else None
        raise _Refused(
            "value contains non-ASCII characters (possible look-alike letters)", hint, "SELECTOR_CHARACTERS"
        )
    if unicodedata.normalize("NFKC", value) != value:  # unreachable for ASCII; kept as the stated rule
        raise _Refused("value changes under Unicode NFKC normalisation", check="SELECTOR_CHARACTERS")
    value = value.strip(" ")
    if not value:
        raise _Refused("value is empty", check="SELECTOR_EMPTY")
    if _WILDCARDS.intersection(value):
        raise _Refused(
            "wildcards (* % ?) are not allowed; selectors are exact",
            "give the exact identifier",
            "SELECTOR_PATTERN",
        )
    return value


def _email(v: str, _region: str) -> str:
    v = v.lower()
    local, at, domain = v.rpartition("@")
    if not at or not local or not domain:
        raise _Refused("not an e-mail address", "expected local-part@domain")
    if len(local) > 64 or not _EMAIL_LOCAL.fullmatch(local):
        raise _Refused("e-mail local part has characters outside a-z 0-9 . _ + -")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise _Refused("e-mail domain is not a valid host name")
    if not labels[-1].isalpha():
        raise _Refused("e-mail domain has no valid top-level domain")
    return f"{local}@{domain}"


def _phone(v: str, region: str) -> str:
    if not _PHONE_CHARS.fullmatch(v):
        raise _Refused("phone number has characters other than digits, +, spaces, (, ), . and -")
    try:
        parsed = phonenumbers.parse(v, region or None)
    except phonenumbers.NumberParseException:
        raise _Refused("not a phone number", "give it in E.164, e.g. +14165550123") from None
    if not phonenumbers.is_valid_number(parsed):
        raise _Refused("not a valid phone number", "give it in E.164, e.g. +14165550123")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def _ip(v: str, _region: str) -> str:
    try:
        ip = ipaddress.ip_address(v)
    except ValueError:
        check = "SELECTOR_PATTERN" if any(c in v for c in "/-,") else "SELECTOR_FORMAT"
        raise _Refused(
            "not an IPv4 or IPv6 address (ranges and masks are not selectors)", check=check
        ) from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _pattern(pattern: re.Pattern[str], fold: Callable[[str], str], what: str) -> Callable[[str, str], str]:
    def check(v: str, _region: str) -> str:
        v = fold(v)
        if not pattern.fullmatch(v):
            raise _Refused(f"{what} has characters outside its allowed set")
        return v

    return check


def _imei(v: str, _region: str) -> str:
    digits = _IMEI_SEPARATORS.sub("", v)
    if not digits.isdigit() or len(digits) not in (15, 16):
        raise _Refused("an IMEI is 15 digits (16 for IMEISV)")
    if len(digits) == 15 and not _luhn_ok(digits):
        raise _Refused("IMEI check digit is wrong")
    return digits


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _vin(v: str, _region: str) -> str:
    v = v.upper()
    if not _VIN.fullmatch(v):
        raise _Refused("a VIN is 17 characters from 0-9 and A-Z without I, O or Q")
    return v


_NORMALISERS: dict[SelectorType, Callable[[str, str], str]] = {
    SelectorType.EMAIL: _email,
    SelectorType.PHONE: _phone,
    SelectorType.IP_ADDRESS: _ip,
    SelectorType.ACCOUNT_ID: _pattern(_ACCOUNT_ID, str, "account id"),
    SelectorType.DEVICE_ID: _pattern(_DEVICE_ID, str.lower, "device id"),
    SelectorType.USERNAME: _pattern(_USERNAME, str.lower, "user name"),
    SelectorType.FIREARM_SERIAL: _pattern(_SERIAL, str.upper, "firearm serial"),
    SelectorType.IMEI: _imei,
    SelectorType.VEHICLE_VIN: _vin,
}


def _selector_type(kind: SelectorType | int | str, position: int | None) -> SelectorType:
    try:
        return SelectorType[kind] if isinstance(kind, str) else SelectorType(kind)
    except (KeyError, ValueError):
        known = ", ".join(t.name for t in SelectorType)
        raise InvalidSelector(
            "unknown selector type",
            position=position,
            selector_type=str(kind),
            hint=f"use one of: {known}",
            check="SELECTOR_TYPE",
        ) from None


def normalise(
    selector_type: SelectorType | int | str, value: str, *, region: str = "", position: int | None = None
) -> str:
    """The canonical form of ``value`` as a selector of ``selector_type``.

    ``region`` (ISO 3166-1 alpha-2) is the default country for phone numbers written without
    a country code; without one (""), a phone number must carry its country code. ``position``
    is the selector's index in the query, used in error messages. Raises InvalidSelector.
    """
    kind = _selector_type(selector_type, position)
    try:
        return _NORMALISERS[kind](_screen(value, MAX_LENGTH[kind]), region)
    except _Refused as refused:
        check = refused.check
        if check == "SELECTOR_FORMAT" and _looks_like_pattern(value):
            check = "SELECTOR_PATTERN"
        raise InvalidSelector(
            refused.reason, position=position, selector_type=kind.name, hint=refused.hint, check=check
        ) from None


_PATTERN_MARKS = frozenset("[]{}|^$\\,;")


def _looks_like_pattern(value: object) -> bool:
    """Whether a refused value reads as a range, list or pattern rather than a typo."""
    return isinstance(value, str) and (bool(_PATTERN_MARKS.intersection(value)) or ".." in value)


def normalise_selectors(
    selectors: Iterable[tuple[SelectorType | int | str, str]], *, region: str = ""
) -> list[Selector]:
    """Normalise ``(type, value)`` pairs (e.g. from ``comity.v1.Selector``: ``(s.type, s.value)``),
    numbering them from 0 in errors; duplicates after normalisation are dropped."""
    out: list[Selector] = []
    seen: set[tuple[SelectorType, str]] = set()
    for position, (kind, value) in enumerate(selectors):
        t = _selector_type(kind, position)
        key = (t, normalise(t, value, region=region, position=position))
        if key not in seen:
            seen.add(key)
            out.append(Selector(*key))
    return out
