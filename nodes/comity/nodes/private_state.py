"""The node's durable record of private hit checks: daily limits and one log entry per evaluation.

Two tables in the node's store database (SQLite or PostgreSQL), beside its records:

- ``<prefix>private_counts``: selectors tested per key (``order:<id>``, ``agency:<id>``) and UTC
  day. A check takes its selectors from every limit at once, in one transaction, by an update that
  adds only while the sum stays within the limit, so checks running at the same time in any number
  of threads or processes never pass a limit together, and a restart starts from what was counted;
- ``<prefix>private_evaluations``: one row per evaluation: that a private check ran, its query id,
  order id, agency, investigator, how many selectors, their commitments (the node never sees the
  selectors), the categories, the epoch and when. Written in the same transaction as the counts,
  before the evaluation is answered. A FETCH after a private hit names such a row
  (:meth:`PrivateLedger.evaluation`).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import grpc
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from comity.core import refusals
from comity.core.errors import ComityError
from comity.core.private_filter import commitment
from comity.nodes._sql import Backend, check_identifier, db_errors, make_engine
from comity.nodes.lookup import from_micros, to_micros
from comity.v1 import comity_pb2 as pb

__all__ = ["Limit", "LoggedEvaluation", "PrivateLedger", "check_precedent"]

_log = logging.getLogger("comity.node")
_ATTEMPTS = 5

refusals.register(
    refusals.Check(
        "PRIVATE_LIMIT",
        "PARTICULARITY",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "{what} may test at most {limit} selectors a day in private hit checks; {used} tested already",
        "Prüm Decision 2008/615 (individual cases, daily capacities)",
    ),
    refusals.Check(
        "PRIVATE_PRECEDENT",
        "TWO_STEP",
        grpc.StatusCode.PERMISSION_DENIED,
        "the private hit check this FETCH names does not admit it: {detail}; name a private hit "
        "check this node evaluated for your agency under this order within the follow-up window, "
        "with the salt of each selector's commitment in it, in the FETCH's selector order",
        "Prüm Decision 2008/615; Prüm II Reg. 2024/982 (records follow a hit)",
    ),
)


@dataclass(frozen=True)
class Limit:
    """One daily limit: what it is about (for the refusal), its counter key and its size."""

    what: str
    key: str
    limit: int


@dataclass(frozen=True)
class LoggedEvaluation:
    """A private check the node evaluated, as its log holds it."""

    query_id: str
    order_id: str
    agency: str
    investigator: str
    selectors: int
    commitments: tuple[bytes, ...]
    epoch: int
    evaluated_at: datetime


class _Lost(Exception):
    """Another transaction inserted a counter row first: start over."""


class PrivateLedger:
    """Daily limits and the evaluation log of private hit checks, in the node's database."""

    def __init__(self, url: str | Path, *, table_prefix: str = "comity_") -> None:
        prefix = check_identifier(table_prefix, "table_prefix")
        self._backend: Backend = make_engine(url)
        md = MetaData()
        self._counts = Table(
            f"{prefix}private_counts",
            md,
            Column("counter", String(300), primary_key=True),
            Column("day", String(10), primary_key=True),
            Column("used", Integer, nullable=False),
        )
        self._evaluations = Table(
            f"{prefix}private_evaluations",
            md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("query_id", String(128), nullable=False, index=True),
            Column("order_id", String(256), nullable=False),
            Column("agency", String(128), nullable=False),
            Column("investigator", String(256), nullable=False),
            Column("selectors", Integer, nullable=False),
            Column("commitments", LargeBinary, nullable=False),
            Column("categories", String(64), nullable=False),
            Column("epoch", BigInteger, nullable=False),
            Column("evaluated_at", BigInteger, nullable=False),
        )
        self._metadata = md
        with db_errors(self._backend.location):
            md.create_all(self._backend.engine, checkfirst=True)

    def take(self, query: pb.Query, limits: Sequence[Limit], *, now: datetime) -> None:
        """Count ``query``'s selectors against every limit of ``now``'s UTC day and log it, or
        raise ``PRIVATE_LIMIT`` naming the first limit it would pass (nothing counted then)."""
        n = len(query.private_selectors)
        day = now.date().isoformat()
        entry = {
            "query_id": query.query_id,
            "order_id": query.order_reference.order_id,
            "agency": query.requesting_agency,
            "investigator": query.investigator,
            "selectors": n,
            "commitments": b"".join(s.commitment for s in query.private_selectors),
            "categories": ",".join(pb.DataCategory.Name(c) for c in query.categories),
            "epoch": query.filter_epoch,
            "evaluated_at": to_micros(now),
        }
        for _ in range(_ATTEMPTS):
            try:
                with db_errors(self._backend.location):
                    self._take(limits, n, day, entry)
            except _Lost:
                continue
            _log.info(
                "private hit check %s evaluated: order %s, agency %s, %d selectors",
                query.query_id,
                entry["order_id"],
                entry["agency"],
                n,
            )
            return
        raise RuntimeError("could not count the private check")  # pragma: no cover - lost races

    def _take(self, limits: Sequence[Limit], n: int, day: str, entry: dict[str, object]) -> None:
        t = self._counts
        try:
            with self._backend.engine.begin() as conn:
                # Limits in key order: two checks sharing limits lock them in the same order.
                for limit in sorted(limits, key=lambda x: x.key):
                    where = (t.c.counter == limit.key) & (t.c.day == day)
                    # The first statement writes, so SQLite takes its write lock here, not after a read.
                    changed = conn.execute(
                        update(t).where(where & (t.c.used + n <= limit.limit)).values(used=t.c.used + n)
                    ).rowcount
                    if changed:
                        continue
                    used = conn.execute(select(t.c.used).where(where)).scalar()
                    if used is not None or n > limit.limit:
                        raise refusals.refuse(
                            "PRIVATE_LIMIT", what=limit.what, limit=limit.limit, used=int(used or 0)
                        )
                    conn.execute(insert(t).values(counter=limit.key, day=day, used=n))
                conn.execute(insert(self._evaluations).values(**entry))
        except IntegrityError as exc:
            raise _Lost from exc

    def used(self, key: str, day: str) -> int:
        """How many selectors ``key`` has tested on ``day`` (ISO date, UTC)."""
        t = self._counts
        with db_errors(self._backend.location), self._backend.engine.connect() as conn:
            value = conn.execute(select(t.c.used).where((t.c.counter == key) & (t.c.day == day))).scalar()
        return int(value or 0)

    def evaluation(self, query_id: str) -> LoggedEvaluation | None:
        """The logged evaluation of private check ``query_id``, or None."""
        t = self._evaluations
        with db_errors(self._backend.location), self._backend.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.query_id == query_id).order_by(t.c.id)).first()
        if row is None:
            return None
        blob = bytes(row.commitments)
        return LoggedEvaluation(
            query_id=row.query_id,
            order_id=row.order_id,
            agency=row.agency,
            investigator=row.investigator,
            selectors=row.selectors,
            commitments=tuple(blob[i : i + 32] for i in range(0, len(blob), 32)),
            epoch=row.epoch,
            evaluated_at=from_micros(row.evaluated_at),
        )

    def evaluations(self) -> list[LoggedEvaluation]:
        """Every logged evaluation, oldest first (for the node's operators)."""
        t = self._evaluations
        with db_errors(self._backend.location), self._backend.engine.connect() as conn:
            ids = [r.query_id for r in conn.execute(select(t.c.query_id).order_by(t.c.id))]
        return [e for e in (self.evaluation(q) for q in ids) if e is not None]

    def drop(self) -> None:
        """Drop both tables and everything in them."""
        with db_errors(self._backend.location):
            self._metadata.drop_all(self._backend.engine, checkfirst=True)

    def close(self) -> None:
        """Close every pooled connection."""
        self._backend.engine.dispose()


def check_precedent(
    ledger: PrivateLedger | None,
    query: pb.Query,
    *,
    order_id: str,
    selectors: Sequence[tuple[str, str]],
    now: datetime,
    window: timedelta,
) -> LoggedEvaluation:
    """A FETCH's ``private_precedent``: a private check this node logged, for the FETCH's agency,
    under its order, within ``window``, whose commitments include every selector of the FETCH
    (``selectors``: normalised (type name, value) pairs, in order, each opened with its salt).

    The node learns nothing new here: the FETCH names its selectors in clear. It cannot know
    whether the private check hit (only the requester does): the precedent shows that one ran.
    """

    def refuse(detail: str) -> ComityError:
        return refusals.refuse("PRIVATE_PRECEDENT", detail=detail)

    precedent = query.private_precedent
    if query.kind != pb.FETCH or query.hit_reference:
        raise refuse("only a FETCH without a hit reference names a private hit check")
    logged = ledger.evaluation(precedent.query_id) if ledger is not None else None
    if logged is None:
        raise refuse(f"this node evaluated no private hit check {precedent.query_id!r}")
    if logged.agency != query.requesting_agency or not hmac.compare_digest(logged.order_id, order_id):
        raise refuse("it ran for another agency or under another order")
    if now - logged.evaluated_at > window:
        raise refuse("it ran before the follow-up window; run a new private hit check")
    if len(precedent.salts) != len(selectors):
        raise refuse(f"{len(precedent.salts)} salts for {len(selectors)} selectors")
    for position, ((name, value), salt) in enumerate(zip(selectors, precedent.salts, strict=True)):
        if len(salt) != 32 or not any(
            hmac.compare_digest(commitment(salt, name, value), c) for c in logged.commitments
        ):
            raise refuse(f"selector {position} is not one it committed to")
    return logged
