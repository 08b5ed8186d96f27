"""The requester's side of a private hit check: blind, sign, unblind, test the filters.

1. :func:`check_filters`: the node's filter segments, each signed by the node (a key the
   federation lists for it), all of its current epoch, none expired;
2. :func:`prepare`: each selector normalised as the responding node does, committed to with a
   fresh salt and blinded with a fresh blind (RFC 9497 VOPRF); the signed query holds only the
   commitments, the blinded elements and the order's id and digest, and the openings (selector,
   salt, blind) and the order go beside it, to the gateway alone;
3. :func:`conclude`: the node's statement must sign exactly the evaluation that came back; the
   DLEQ proof must show the filters' key made it; the unblinded outputs are tested against the
   segments of the asked categories and, for TRAFFIC and CONTENT, of the days inside the signed
   time range (:func:`scoped_range`: whole UTC days). Only this process learns hit or no hit.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from comity.audit.receipt import VerifiedReceipt
from comity.audit.statement import DatedKeys
from comity.core import refusals, voprf
from comity.core.dsse import payload_digest
from comity.core.errors import Attempt, ComityError, InvalidArgument
from comity.core.private_check import evaluation_digest
from comity.core.private_filter import (
    FilterSegment,
    commitment,
    day_inside,
    selector_input,
    verify_segment,
    whole_days,
)
from comity.core.selectors import normalise
from comity.sdk.query import QuerySpec, Selector, build_query
from comity.v1 import comity_pb2 as pb

__all__ = [
    "PreparedCheck",
    "PrivateHit",
    "PrivateResult",
    "check_filters",
    "conclude",
    "false_positive_bound",
    "false_positive_rate",
    "load_precedent",
    "prepare",
    "save_precedent",
    "scoped_range",
    "tested_segments",
]


@dataclass(frozen=True)
class PrivateHit:
    """One selector's answer: hit or no hit (a hit is a false positive with ``false_positive_rate``)."""

    selector: Selector
    hit: bool
    salt: bytes
    """The salt of the selector's commitment in the signed query: what a FETCH after a hit
    shows the node so it can find this check in its log (:meth:`PrivateResult.precedent`)."""


@dataclass(frozen=True)
class PrivateResult:
    """A verified private hit check: per selector, hit or no hit, and its receipt."""

    query_id: str
    node_id: str
    hits: list[PrivateHit]
    epoch: int
    false_positive_rate: float
    """The node's configured rate: the chance one test of a selector not held answers hit."""
    false_positive_bound: float
    """The chance any selector of this check not held answers hit here: each selector is tested
    once per segment of its type, categories and days, so this is the sum of the rates over
    the tested segments, for the selector with the most of them."""
    receipt: pb.Receipt
    verified: VerifiedReceipt
    attempts: tuple[Attempt, ...] = ()
    """Every submission made for this check, in order (see ``Result.attempts``)."""

    @property
    def resubmitted(self) -> bool:
        """True when the answered check was sent again after an earlier attempt failed."""
        return len(self.attempts) > 1

    @property
    def hit(self) -> bool:
        """Whether any selector hit."""
        return any(h.hit for h in self.hits)

    def precedent(self, selectors: Sequence[Selector] | None = None) -> pb.PrivatePrecedent:
        """What a FETCH of ``selectors`` (default: those that hit, in order) names as the private
        check it follows (``QuerySpec.private_precedent``); give the FETCH the same selectors in
        the same order. Raises InvalidArgument for a selector this check did not test."""
        chosen = list(selectors) if selectors is not None else [h.selector for h in self.hits if h.hit]
        salts = []
        for selector in chosen:
            found = next((h for h in self.hits if h.selector == selector), None)
            if found is None:
                raise InvalidArgument(
                    f"{selector.type}:{selector.value} was not tested by private hit check {self.query_id}"
                )
            salts.append(found.salt)
        return pb.PrivatePrecedent(query_id=self.query_id, salts=salts)


PRECEDENT_FORMAT = "comity-private-precedent/1"


def save_precedent(result: PrivateResult, path: Path) -> None:
    """Keep what a later FETCH needs to name ``result`` as its precedent (:func:`load_precedent`):
    the check's id and node and, per selector tested, whether it hit and its commitment salt.

    Written with mode 0600: a salt opens the commitment the node holds, so whoever has the file can
    confirm a guess of the selector against the node's log."""
    doc = {
        "format": PRECEDENT_FORMAT,
        "query_id": result.query_id,
        "node_id": result.node_id,
        "selectors": [
            {"type": h.selector.type, "value": h.selector.value, "hit": h.hit, "salt": h.salt.hex()}
            for h in result.hits
        ],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=2)
        out.write("\n")
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


def load_precedent(path: Path, *, node: str, selectors: Sequence[Selector]) -> pb.PrivatePrecedent:
    """The precedent a FETCH of ``selectors`` from ``node`` names, from a file :func:`save_precedent`
    wrote. Raises InvalidArgument when the file is not one, names another node, or a selector was not
    tested or did not hit (a private no hit is always right: there is nothing to fetch)."""
    hint = "write it with --keep-precedent on the private hit check, and fetch with the same selectors"
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidArgument(f"{path}: no such precedent file", hint=hint) from None
    except (OSError, UnicodeDecodeError, ValueError):
        raise InvalidArgument(f"{path} is not a private hit check's precedent file", hint=hint) from None
    try:
        if doc["format"] != PRECEDENT_FORMAT:
            raise ValueError
        query_id, node_id = str(doc["query_id"]), str(doc["node_id"])
        tested = {
            (str(e["type"]), str(e["value"])): (bool(e["hit"]), bytes.fromhex(e["salt"]))
            for e in doc["selectors"]
        }
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument(f"{path} is not a private hit check's precedent file", hint=hint) from None
    if node_id != node:
        raise InvalidArgument(
            f"private hit check {query_id} asked {node_id}, not {node}",
            hint=f"fetch from {node_id}, the node the private hit check asked",
        )
    salts = []
    for selector in selectors:
        found = tested.get((selector.type, selector.value))
        if found is None:
            raise InvalidArgument(
                f"{selector.type}:{selector.value} was not tested by private hit check {query_id}", hint=hint
            )
        hit, salt = found
        if not hit:
            raise InvalidArgument(
                f"{selector.type}:{selector.value} did not hit in private hit check {query_id}",
                hint="a private no hit is always right: the node holds nothing to fetch for it",
            )
        salts.append(salt)
    return pb.PrivatePrecedent(query_id=query_id, salts=salts)


@dataclass(frozen=True)
class PreparedCheck:
    """A blinded query and what only the requester keeps to conclude it."""

    query: pb.Query
    openings: pb.PrivateOpenings
    inputs: list[bytes]
    blinds: list[bytes]
    segments: list[FilterSegment]
    selectors: list[Selector]


def _invalid(detail: str) -> ComityError:
    return refusals.refuse("PRIVATE_FILTER_INVALID", detail=detail)


def _verify(wire: pb.PrivateFilter, node: str, keys: DatedKeys) -> FilterSegment:
    for key in keys.all():
        try:
            return verify_segment(wire, node_id=node, keys={node: key})
        except ComityError:
            continue
    raise _invalid(f"a segment is not signed by a key the federation lists for {node!r}, or was altered")


def check_filters(
    filters: pb.PrivateFilters, *, node: str, keys: DatedKeys, now: datetime
) -> list[FilterSegment]:
    """Every segment verified, of the epoch the node says is current, one key, none expired."""
    segments = [_verify(f, node, keys) for f in filters.filters]
    if not segments:
        raise _invalid("the node published no filter segment")
    if any(s.header.epoch != filters.epoch for s in segments):
        raise _invalid("the segments are of several epochs")
    if len({s.header.public_key for s in segments}) != 1:
        raise _invalid("the segments of one epoch name several keys")
    for s in segments:
        if s.stale(now):
            raise refusals.refuse(
                "PRIVATE_FILTER_EXPIRED",
                epoch=s.header.epoch,
                expires=s.header.expires_at.ToDatetime(tzinfo=UTC).isoformat(),
            )
    return segments


def scoped_range(spec: QuerySpec) -> tuple[datetime, datetime] | None:
    """The time range a private check of ``spec`` signs and tests: its whole UTC days.

    Raises InvalidArgument when the range holds no whole day.
    """
    if spec.time_range is None:
        return None
    start, end = whole_days(*spec.time_range)
    assert start is not None and end is not None
    if start > end:
        raise InvalidArgument(
            "the time range holds no whole UTC day; a private hit check tests whole days",
            hint="give a range from one midnight (UTC) to a later one",
        )
    return start, end


def prepare(
    spec: QuerySpec,
    segments: list[FilterSegment],
    *,
    region: str,
    investigator: str,
    agency: str,
    now: datetime,
) -> PreparedCheck:
    """The private query for ``spec`` against ``segments`` (``region``: the node's country)."""
    if spec.legal_order is None:
        raise InvalidArgument("a private hit check needs its legal order", hint="pass --order")
    plain = build_query(
        # The range signed, authorised and logged is the whole days the filters are tested for.
        QuerySpec(
            **{
                **spec.__dict__,
                "kind": "hit-check",
                "selectors": (),
                "legal_order": None,
                "time_range": scoped_range(spec),
            }
        ),
        investigator=investigator,
        agency=agency,
        now=now,
    )
    query = pb.Query()
    query.CopyFrom(plain)
    query.kind = pb.PRIVATE_HIT_CHECK
    order = pb.LegalOrder.FromString(spec.legal_order.payload)
    query.order_reference.order_id = order.order_id
    query.order_reference.order_digest = payload_digest(spec.legal_order)
    query.filter_epoch = segments[0].header.epoch
    openings = pb.PrivateOpenings(legal_order=spec.legal_order)
    inputs: list[bytes] = []
    blinds: list[bytes] = []
    for position, selector in enumerate(spec.selectors):
        wire = selector.to_proto()
        value = normalise(wire.type, wire.value, region=region, position=position)
        name = pb.SelectorType.Name(wire.type)
        salt = secrets.token_bytes(32)
        message = selector_input(name, value)
        blind, element = voprf.blind(message)
        query.private_selectors.add(
            type=wire.type, commitment=commitment(salt, name, value), blinded_element=element
        )
        openings.openings.add(selector=wire, salt=salt, blind=blind)
        inputs.append(message)
        blinds.append(blind)
    return PreparedCheck(query, openings, inputs, blinds, segments, list(spec.selectors))


def tested_segments(
    segments: list[FilterSegment], query: pb.Query, selector_type: int
) -> list[FilterSegment]:
    """The segments a selector of ``selector_type`` is tested against for ``query``.

    Those of its type and of the query's categories; a dated one (TRAFFIC, CONTENT) only when
    its whole day lies inside the query's time range, as a HIT_CHECK reads those records.
    """
    categories = set(query.categories)
    tr = query.time_range
    start = tr.start.ToDatetime(tzinfo=UTC) if tr.HasField("start") else None
    end = tr.end.ToDatetime(tzinfo=UTC) if tr.HasField("end") else None
    return [
        s
        for s in segments
        if s.header.selector_type == selector_type
        and s.header.category in categories
        and (not s.header.HasField("day") or day_inside(s.header.day.ToDatetime(tzinfo=UTC), start, end))
    ]


def conclude(
    prepared: PreparedCheck, result: pb.QueryResult, statement: pb.NodeStatement
) -> list[PrivateHit]:
    """Hit or no hit per selector, from the node's verified evaluation (raises on any mismatch)."""
    evaluation = result.private_evaluation
    if not hmac.compare_digest(statement.evaluation_digest, evaluation_digest(evaluation)):
        raise _invalid("the evaluation is not the one the node signed")
    if evaluation.epoch != prepared.query.filter_epoch or statement.filter_epoch != evaluation.epoch:
        raise _invalid("the evaluation is of another epoch than the filters")
    blinded = [s.blinded_element for s in prepared.query.private_selectors]
    try:
        outputs = voprf.finalize(
            prepared.segments[0].header.public_key,
            prepared.inputs,
            prepared.blinds,
            blinded,
            list(evaluation.evaluated_elements),
            evaluation.proof,
        )
    except voprf.VoprfError as exc:
        raise _invalid(f"the node's proof does not verify ({exc})") from None
    hits = []
    for selector, wire, output, opening in zip(
        prepared.selectors,
        prepared.query.private_selectors,
        outputs,
        prepared.openings.openings,
        strict=True,
    ):
        tested = tested_segments(prepared.segments, prepared.query, wire.type)
        hits.append(PrivateHit(selector, any(s.set.contains(output) for s in tested), opening.salt))
    return hits


def false_positive_rate(segments: list[FilterSegment]) -> float:
    """The chance a selector not held tests as a hit in one segment (the configured rate)."""
    return max(1 / s.header.inverse_fp_rate for s in segments)


def false_positive_bound(prepared: PreparedCheck) -> float:
    """The chance a selector of ``prepared`` not held answers hit: the sum of the rates of the
    segments it is tested against, for the selector with the most (a union bound)."""
    return max(
        sum(1 / s.header.inverse_fp_rate for s in tested_segments(prepared.segments, prepared.query, p.type))
        for p in prepared.query.private_selectors
    )
