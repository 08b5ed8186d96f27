"""The gateway's checks on an investigator's signed query, one named function per check.

:func:`verify_signed_query` runs, in order:

1. :func:`check_query_signature`: a signature by the token subject's registered key over the
   exact payload bytes, before anything parses them;
2. :func:`parse_query`: the bytes are a Query;
3. :func:`check_query_identity`: the query's investigator and requesting agency are the token's;
4. :func:`check_freshness`: ``issued_at`` lies inside the freshness window, in both directions
   (a small clock skew allowed), so a captured query cannot be sent again later — the replay
   store (:mod:`comity.core.replay`) catches a resend inside the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.message import DecodeError

from comity.core import refusals
from comity.core.dsse import PAYLOAD_QUERY, EnvelopeError, UnknownSigner, payload_digest, verify_envelope
from comity.core.errors import InvalidArgument, Unauthenticated
from comity.core.federation import Federation
from comity.core.keys import VerifyingKey
from comity.core.tokens import VerifiedToken
from comity.v1 import comity_pb2 as pb

__all__ = [
    "DEFAULT_FRESHNESS",
    "DEFAULT_SKEW",
    "MAX_QUERY_ID_LENGTH",
    "StaleQuery",
    "VerifiedQuery",
    "check_freshness",
    "check_query_identity",
    "check_query_signature",
    "parse_query",
    "verify_signed_query",
]

_RULE = "AUDIT_FIELDS"
_BASIS = "Prüm Decision 2008/615 art. 30 (what was supplied, the exact time, the officer who searched)"
refusals.register(
    refusals.Check(
        "QUERY_MISSING",
        _RULE,
        grpc.StatusCode.INVALID_ARGUMENT,
        "signed_query is missing; sign the Query and send it as a DSSE envelope",
        _BASIS,
    ),
    refusals.Check(
        "QUERY_ENVELOPE",
        _RULE,
        grpc.StatusCode.INVALID_ARGUMENT,
        "the signed query's envelope is malformed: {detail}",
        _BASIS,
    ),
    refusals.Check(
        "QUERY_SIGNATURE",
        _RULE,
        grpc.StatusCode.UNAUTHENTICATED,
        "the query is not signed by the investigator's registered key: {detail}",
        _BASIS,
    ),
    refusals.Check(
        "QUERY_DECODE",
        _RULE,
        grpc.StatusCode.INVALID_ARGUMENT,
        "signed query payload is not a Query message",
        _BASIS,
    ),
    refusals.Check(
        "QUERY_IDENTITY",
        _RULE,
        grpc.StatusCode.UNAUTHENTICATED,
        "the query must name the token's investigator and agency: {detail}",
        _BASIS,
    ),
    refusals.Check(
        "QUERY_ID",
        _RULE,
        grpc.StatusCode.INVALID_ARGUMENT,
        "query_id must be 1 to {limit} characters; give every query a fresh unique id",
        _BASIS,
    ),
    refusals.Check(
        "QUERY_ISSUED_AT",
        _RULE,
        grpc.StatusCode.INVALID_ARGUMENT,
        "issued_at is missing; stamp the query with the time it is signed",
        _BASIS,
    ),
    refusals.Check(
        "QUERY_STALE",
        _RULE,
        grpc.StatusCode.UNAUTHENTICATED,
        "the query was issued at {issued_at}, {seconds} s before {judge}'s clock: more than {freshness} "
        "ago; if it was signed just now, the clocks differ by about {seconds} s (set both by NTP), "
        "otherwise sign a new query (with a new query id) and send it straight away",
        _BASIS,
    ),
    refusals.Check(
        "QUERY_FROM_FUTURE",
        _RULE,
        grpc.StatusCode.UNAUTHENTICATED,
        "the query was issued at {issued_at}, {seconds} s after {judge}'s clock: the clocks differ by "
        "about {seconds} s; set both by NTP",
        _BASIS,
    ),
)

#: Longest accepted query id (the replay store's key).
MAX_QUERY_ID_LENGTH = 128

DEFAULT_FRESHNESS = timedelta(minutes=5)
DEFAULT_SKEW = timedelta(seconds=30)


class StaleQuery(Unauthenticated):
    """A query's issued-at is outside the freshness window (too old, or from the future)."""


@dataclass(frozen=True, slots=True)
class VerifiedQuery:
    """A query whose signature, signer and freshness checked out.

    ``digest`` is the SHA-256 of the envelope's payload (how decisions and receipts name the
    query); ``envelope`` is the signed envelope exactly as received, to forward unchanged.
    """

    query: pb.Query
    digest: bytes
    signer: VerifyingKey
    envelope: pb.Envelope
    issued_at: datetime

    @property
    def query_id(self) -> str:
        """The query's id."""
        return self.query.query_id


def check_query_signature(
    envelope: pb.Envelope, token: VerifiedToken, *, key: VerifyingKey | None = None
) -> tuple[bytes, VerifyingKey]:
    """Step 1: signed by the key registered for the token's subject; returns (payload, signer)."""
    key = key or token.investigator.key
    try:
        return verify_envelope(
            envelope, payload_type=PAYLOAD_QUERY, keys={key.key_id: key}, what="signed query"
        )
    except UnknownSigner:
        message = f"the query is not signed by the key registered for {token.subject!r}"
        raise Unauthenticated(
            message,
            hint="sign with your registered key; its key id is your investigator id",
            violations=[refusals.violation("QUERY_SIGNATURE", detail=message)],
        ) from None
    except EnvelopeError as exc:
        exc.violations = [refusals.violation("QUERY_SIGNATURE", detail=exc.message)]
        raise
    except InvalidArgument as exc:
        exc.violations = [refusals.violation("QUERY_ENVELOPE", detail=exc.message)]
        raise


def parse_query(payload: bytes) -> pb.Query:
    """Step 2: the signed bytes as a Query."""
    try:
        return pb.Query.FromString(payload)
    except DecodeError:
        raise refusals.refuse("QUERY_DECODE") from None


def check_query_identity(query: pb.Query, token: VerifiedToken) -> None:
    """Step 3: the query speaks for the token's investigator and agency, not someone else."""
    if query.investigator != token.subject:
        raise refusals.refuse(
            "QUERY_IDENTITY",
            detail=f"the query names investigator {query.investigator!r}; the token is {token.subject!r}'s",
        )
    if query.requesting_agency != token.agency:
        raise refusals.refuse(
            "QUERY_IDENTITY",
            detail=f"the query names agency {query.requesting_agency!r}; "
            f"{token.subject!r} belongs to {token.agency}",
        )
    if not query.query_id or len(query.query_id) > MAX_QUERY_ID_LENGTH:
        raise refusals.refuse("QUERY_ID", limit=MAX_QUERY_ID_LENGTH)


def check_freshness(
    query: pb.Query,
    *,
    now: datetime,
    freshness: timedelta = DEFAULT_FRESHNESS,
    skew: timedelta = DEFAULT_SKEW,
    judge: str = "the gateway",
) -> datetime:
    """Step 4: ``now - freshness - skew <= issued_at <= now + skew``; returns issued-at.

    ``judge`` names whose clock ``now`` is (the gateway, or a node checking again): a query
    signed just now and refused here says how far that clock and the signer's differ.
    """
    if not query.HasField("issued_at"):
        raise refusals.refuse("QUERY_ISSUED_AT")
    try:
        issued_at = query.issued_at.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):  # seconds outside what a datetime can hold
        raise refusals.refuse("QUERY_ISSUED_AT") from None
    seconds = round(abs((now - issued_at).total_seconds()))
    values = {"issued_at": issued_at.isoformat(), "seconds": seconds, "judge": judge}
    if issued_at < now - freshness - skew:
        raise StaleQuery(
            f"the query was issued at {issued_at.isoformat()}, {seconds} s before {judge}'s clock: "
            f"more than {freshness} ago",
            hint=f"if it was signed just now, the clocks of the signer's machine and {judge} differ by "
            f"about {seconds} s (set both by NTP); otherwise sign a new query (with a new query id) "
            "and send it straight away",
            violations=[refusals.violation("QUERY_STALE", freshness=freshness, **values)],
        )
    if issued_at > now + skew:
        raise StaleQuery(
            f"the query was issued at {issued_at.isoformat()}, {seconds} s after {judge}'s clock",
            hint=f"the clocks of the signer's machine and {judge} differ by about {seconds} s; "
            "set both by NTP",
            violations=[refusals.violation("QUERY_FROM_FUTURE", **values)],
        )
    return issued_at


def verify_signed_query(
    envelope: pb.Envelope,
    *,
    token: VerifiedToken,
    now: datetime,
    freshness: timedelta = DEFAULT_FRESHNESS,
    skew: timedelta = DEFAULT_SKEW,
    federation: Federation | None = None,
) -> VerifiedQuery:
    """Run steps 1–4; raises :class:`Unauthenticated` (or :class:`InvalidArgument` for malformed input).

    The investigator's key is the one ``federation`` registers for the token's subject (the
    token verifier already looked it up there; without ``federation`` that key is used).
    """
    key = federation.investigator(token.subject).key if federation is not None else token.investigator.key
    payload, signer = check_query_signature(envelope, token, key=key)
    query = parse_query(payload)
    check_query_identity(query, token)
    issued_at = check_freshness(query, now=now, freshness=freshness, skew=skew)
    return VerifiedQuery(query, payload_digest(envelope), signer, envelope, issued_at)
