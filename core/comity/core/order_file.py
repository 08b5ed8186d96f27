"""Legal orders and envelopes on disk: an authority's order description, and signed envelopes.

An order description is TOML or JSON with the fields of ``comity.v1.LegalOrder``::

    order_id = "US-SDNY-2026-0142"
    issuing_authority = "us.court.sdny"
    issuing_country = "US"
    offence_code = "US-18-1343"
    authorised_by = "Hon. A. Judge"
    authorisation_type = "judicial"
    selectors = ["email:target@example.org", { type = "phone", value = "+15551234567" }]
    categories = ["subscriber", "traffic"]
    valid_from = 2026-11-01T00:00:00Z        # JSON: an ISO 8601 string with a time zone
    valid_until = 2027-02-01T00:00:00Z
    max_records = 50
    emergency = false
    [target]                                 # what the requester attests about the target
    nationalities = ["US", "GB"]             # every nationality (ISO 3166-1 alpha-2), at least one
    residences = ["US"]                      # every country of residence, at least one
    locations = ["MX"]                       # every country the target is believed to be in
    kind = "natural-person"                  # or "legal-person", with incorporated_in = "DE"
    not_for_third_government = true

Every ``[target]`` field is required (``incorporated_in`` for a legal person only): nothing is
defaulted, and a code that is not an assigned ISO 3166-1 alpha-2 code, or is listed twice, is an
error naming the field. The single-valued ``[attestation]`` table of the earlier format is refused.

Envelopes are written as binary protobuf, or as protobuf JSON when the file name ends in
``.json``; :func:`read_envelope` reads either.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from comity.core.errors import ConfigError
from comity.core.target import COUNTRY_SETS, parse_kind, target_problem
from comity.v1 import comity_pb2 as pb

__all__ = ["order_from_mapping", "read_envelope", "read_order_description", "write_envelope"]

_SELECTOR_TYPES = {v.name.lower(): v.name for v in pb.SelectorType.DESCRIPTOR.values if v.number}
_CATEGORIES = {v.name.lower(): v.name for v in pb.DataCategory.DESCRIPTOR.values if v.number}
_TEXT_FIELDS = ("order_id", "issuing_authority", "issuing_country", "offence_code", "authorised_by")
_KNOWN = {
    *_TEXT_FIELDS,
    "authorisation_type",
    "selectors",
    "categories",
    "valid_from",
    "valid_until",
    "max_records",
    "emergency",
    "target",
}
_TARGET_FIELDS = {*COUNTRY_SETS, "kind", "incorporated_in", "not_for_third_government"}


def read_order_description(path: Path, *, target: pb.TargetFacts | None = None) -> pb.LegalOrder:
    """Read an order description (``.json`` as JSON, anything else as TOML).

    ``target``: the target facts from the command line, instead of the ``[target]`` table.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read order description: {exc.strerror}", source=str(path)) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}", source=str(path)) from None
    return order_from_mapping(data, source=str(path), target=target)


def order_from_mapping(
    data: Mapping[str, Any], *, source: str = "<order>", target: pb.TargetFacts | None = None
) -> pb.LegalOrder:
    """Build a LegalOrder from parsed TOML/JSON; raises :class:`ConfigError` naming the field.

    ``target`` supplies the target facts instead of the description's ``[target]`` table (from
    the command line); giving both is an error, as is giving neither.
    """

    def bad(field: str, message: str) -> ConfigError:
        return ConfigError(message, field=field, source=source)

    if "attestation" in data:
        raise bad(
            "attestation",
            "the single-valued [attestation] table is no longer read: write a [target] table with "
            "nationalities, residences, locations, kind and not_for_third_government",
        )
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise bad(unknown[0], "unknown field (misspelt?)")
    order = pb.LegalOrder()
    for name in _TEXT_FIELDS:
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise bad(name, "required text is missing or empty")
        setattr(order, name, value)
    kind = data.get("authorisation_type")
    if kind not in ("judicial", "independent", "administrative"):
        raise bad("authorisation_type", "must be judicial, independent or administrative")
    order.authorisation_type = kind
    order.MergeFrom(
        pb.LegalOrder(
            selectors=_selectors(data.get("selectors"), bad),
            categories=_categories(data.get("categories"), bad),
        )
    )
    for name in ("valid_from", "valid_until"):
        getattr(order, name).FromDatetime(_when(data.get(name), name, bad))
    max_records = data.get("max_records", 0)
    if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 0:
        raise bad("max_records", "must be a whole number ≥ 0")
    order.max_records = max_records
    emergency = data.get("emergency", False)
    if not isinstance(emergency, bool):
        raise bad("emergency", "must be true or false")
    order.emergency = emergency
    if target is not None and "target" in data:
        raise bad("target", "the target facts are given both in the description and on the command line")
    order.target.CopyFrom(target if target is not None else _target(data.get("target"), bad))
    problem = target_problem(order.target)
    if problem is not None:
        raise bad(problem.field, problem.message)
    return order


def _selectors(raw: Any, bad: Any) -> list[pb.Selector]:
    if not isinstance(raw, list) or not raw:
        raise bad("selectors", "must list at least one selector")
    out = []
    for i, item in enumerate(raw):
        field = f"selectors[{i}]"
        if isinstance(item, str):
            kind, _, value = item.partition(":")
        elif isinstance(item, dict) and set(item) == {"type", "value"}:
            kind, value = str(item["type"]), str(item["value"])
        else:
            raise bad(field, "must be 'TYPE:VALUE' or {type = ..., value = ...}")
        name = _SELECTOR_TYPES.get(kind.lower().replace("-", "_"))
        if name is None or not value:
            raise bad(field, f"unknown selector type or empty value; types: {', '.join(_SELECTOR_TYPES)}")
        out.append(pb.Selector(type=name, value=value))
    return out


def _categories(raw: Any, bad: Any) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise bad("categories", "must list at least one data category")
    out = []
    for i, item in enumerate(raw):
        name = _CATEGORIES.get(str(item).lower())
        if name is None:
            raise bad(f"categories[{i}]", f"must be one of {', '.join(_CATEGORIES)}")
        out.append(name)
    return out


def _when(raw: Any, field: str, bad: Any) -> datetime:
    if isinstance(raw, str):
        try:
            raw = datetime.fromisoformat(raw)
        except ValueError:
            raise bad(field, "must be an ISO 8601 date and time") from None
    if not isinstance(raw, datetime):
        raise bad(field, "required date and time is missing")
    if raw.tzinfo is None:
        raise bad(field, "must carry a time zone (e.g. 2026-11-01T00:00:00Z)")
    return raw


def _target(raw: Any, bad: Any) -> pb.TargetFacts:
    if raw is None:
        raise bad("target", "required: what the requester attests about the target (docs/investigators.md)")
    if not isinstance(raw, dict):
        raise bad("target", "must be a table")
    unknown = sorted(set(raw) - _TARGET_FIELDS)
    if unknown:
        raise bad(f"target.{unknown[0]}", "unknown field (misspelt?)")
    out = pb.TargetFacts()
    for name in COUNTRY_SETS:
        codes = raw.get(name)
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise bad(f"target.{name}", 'required: a list of ISO 3166-1 alpha-2 codes, e.g. ["GB", "FR"]')
        getattr(out, name).extend(codes)
    kind = raw.get("kind")
    if not isinstance(kind, str):
        raise bad("target.kind", "required: natural-person or legal-person")
    try:
        out.kind = parse_kind(kind)
    except ValueError as exc:
        raise bad("target.kind", str(exc)) from None
    incorporated = raw.get("incorporated_in", "")
    if not isinstance(incorporated, str):
        raise bad("target.incorporated_in", "must be an ISO 3166-1 alpha-2 code")
    out.incorporated_in = incorporated
    flag = raw.get("not_for_third_government")
    if not isinstance(flag, bool):
        raise bad("target.not_for_third_government", "required: true or false")
    out.not_for_third_government = flag
    return out


def write_envelope(envelope: pb.Envelope, path: Path, *, as_json: bool | None = None) -> None:
    """Write ``envelope``: protobuf JSON when ``as_json`` (default: the name ends in .json), else binary."""
    if as_json is None:
        as_json = path.suffix == ".json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if as_json:
        path.write_text(json_format.MessageToJson(envelope) + "\n", encoding="utf-8")
    else:
        path.write_bytes(envelope.SerializeToString())


def read_envelope(path: Path) -> pb.Envelope:
    """Read an envelope written by :func:`write_envelope` (JSON or binary, recognised by content)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read envelope {path}: {exc.strerror}") from None
    try:
        if data.lstrip().startswith(b"{"):
            return json_format.Parse(data.decode("utf-8"), pb.Envelope())
        return pb.Envelope.FromString(data)
    except (json_format.ParseError, DecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not a signed envelope: {exc}") from None
