"""The node's private hit check filters: its OPRF key schedule and its signed filter segments.

The OPRF key of an epoch is derived (RFC 9497 DeriveKeyPair) from a seed that is itself
derived from the node's response key, so no extra key file is needed and every process of the
node derives the same key; an epoch lasts ``rotation`` (a fixed schedule from the Unix epoch).

Segments are scoped as a plain hit check reads records: per selector type and data category,
and for TRAFFIC and CONTENT (to which a query's time range applies) per UTC day the records were
observed on, so a requester tests exactly the days its time range holds; SUBSCRIBER segments
are undated (a hit check's time range does not apply to them). Within an epoch the segments are
numbered in one sequence: the first ones hold every selector in the store when the epoch's
filters were built; each refresh after records were loaded adds, per (type, category, day),
a segment with the values not yet in one. A selector found on a record about one of the node's
own persons (its country's nationals, residents or persons located there, as the record says;
a record whose country facts cannot be read counts as one) is left out, so a private check
answers as a plain hit check does: no hit. Deleted selectors leave the filters at the next
rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from comity.core import voprf
from comity.core.keys import SigningKey
from comity.core.private_filter import (
    DEFAULT_INVERSE_FP_RATE,
    GolombSet,
    day_inside,
    day_of,
    selector_input,
    sign_segment,
)
from comity.nodes.lookup import TimeRange
from comity.nodes.schema import DataCategory, Schema, Selector, SelectorType
from comity.nodes.store import RecordStore
from comity.nodes.subjects import SubjectFacts, SubjectFactsUnreadable, names_subject, record_facts
from comity.v1 import comity_pb2 as pb

__all__ = ["KeySchedule", "PrivateFilters"]

_SEED_LABEL = b"comity/private-hit-check/oprf-seed/v1"
_DAY_SECONDS = 86_400
_UNDATED = -1

# (selector type, data category, UTC day number since 1970-01-01 or _UNDATED)
_Shard = tuple[int, int, int]


@dataclass(frozen=True)
class KeySchedule:
    """Epoch numbers and OPRF keys: epoch ``e`` covers ``[e·rotation, (e+1)·rotation)``."""

    seed: bytes
    rotation: timedelta

    @classmethod
    def from_response_key(cls, key: SigningKey, *, rotation: timedelta) -> KeySchedule:
        """The schedule of a node whose response key is ``key``."""
        raw = key.private_key.private_bytes_raw()
        return cls(hmac.new(raw, _SEED_LABEL, hashlib.sha256).digest(), rotation)

    def epoch(self, now: datetime) -> int:
        """The epoch ``now`` falls in."""
        return int(now.timestamp() // self.rotation.total_seconds())

    def expires(self, epoch: int) -> datetime:
        """When ``epoch`` ends."""
        return datetime.fromtimestamp((epoch + 1) * self.rotation.total_seconds(), UTC)

    def key(self, epoch: int) -> voprf.KeyPair:
        """The OPRF key of ``epoch``."""
        return voprf.derive_key_pair(self.seed, b"comity private filters, epoch " + str(epoch).encode())


def _timestamp(t: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(t)
    return ts


class PrivateFilters:
    """The node's current epoch: its key and its signed filter segments (thread-safe)."""

    def __init__(
        self,
        *,
        node_id: str,
        country: str,
        store: RecordStore,
        schema: Schema,
        response_key: SigningKey,
        schedule: KeySchedule,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        inverse_fp_rate: int = DEFAULT_INVERSE_FP_RATE,
    ) -> None:
        self._node_id = node_id
        self._country = country
        self._store = store
        self._schema = schema
        self._key = response_key
        self.schedule = schedule
        self._clock = clock
        self._inverse = inverse_fp_rate
        self._lock = threading.Lock()
        self._epoch = -1
        self._oprf: voprf.KeyPair | None = None
        self._segments: list[tuple[_Shard, pb.PrivateFilter]] = []
        self._included: dict[_Shard, set[str]] = {}

    def current(self) -> tuple[int, voprf.KeyPair]:
        """The current epoch and its key, rotating first when the schedule says so."""
        with self._lock:
            if self.schedule.epoch(self._clock()) != self._epoch or self._oprf is None:
                self._rotate()
            assert self._oprf is not None
            return self._epoch, self._oprf

    def refresh(self) -> int:
        """Rotate if due, else add a segment for selectors loaded since; returns new segments."""
        with self._lock:
            if self.schedule.epoch(self._clock()) != self._epoch or self._oprf is None:
                return self._rotate()
            return self._extend()

    def filters(
        self, *, epoch: int = 0, from_segment: int = 0, time_range: TimeRange | None = None
    ) -> pb.PrivateFilters:
        """The segments of the current epoch (``epoch`` 0 or the current one), from ``from_segment``.

        With ``time_range``, only the dated segments of whole days inside it (and every undated
        one): what a requester tests for a query over that range.
        """
        current, _ = self.current()
        with self._lock:
            out = pb.PrivateFilters(epoch=current)
            if epoch not in (0, current):
                return out  # an old epoch's segments are gone: the requester must start over
            for (_, _, day), segment in self._segments[from_segment:]:
                if day != _UNDATED and time_range is not None:
                    start = datetime.fromtimestamp(day * _DAY_SECONDS, UTC)
                    if not day_inside(start, time_range.start, time_range.end):
                        continue
                out.filters.append(segment)
            return out

    def _rotate(self) -> int:
        self._epoch = self.schedule.epoch(self._clock())
        self._oprf = self.schedule.key(self._epoch)
        self._segments = []
        self._included = {}
        return self._extend()

    def _scan(self) -> dict[_Shard, set[str]]:
        """Every selector's shards, without those whose subject is one of the node's own persons.

        A selector's subject is judged as a plain hit check judges it (NO_TARGETING_RECORDS at
        the node): by the country facts of every record the selector names the subject of, in
        every category and at every time; facts that cannot be read leave it out (fail closed).
        """
        found: dict[_Shard, set[str]] = {}
        own: set[tuple[int, str]] = set()
        for record, pairs in self._store.selector_entries():
            rt = self._schema.get(record.record_type)
            day = (
                _UNDATED
                if record.category is DataCategory.SUBSCRIBER
                else int(day_of(record.observed_at).timestamp()) // _DAY_SECONDS
            )
            facts: SubjectFacts | None = None
            for selector_type, value in pairs:
                found.setdefault((selector_type, int(record.category), day), set()).add(value)
                if rt is None:
                    own.add((selector_type, value))
                    continue
                if not names_subject(record, rt, Selector(SelectorType(selector_type), value)):
                    continue
                try:
                    facts = facts if facts is not None else record_facts(record, rt)
                except SubjectFactsUnreadable:
                    own.add((selector_type, value))
                    continue
                if facts.belongs_to(self._country):
                    own.add((selector_type, value))
        if not own:
            return found
        # One pass over the entries (the own selectors grouped by type first).
        own_by_type: dict[int, set[str]] = {}
        for selector_type, value in own:
            own_by_type.setdefault(selector_type, set()).add(value)
        empty: set[str] = set()
        return {
            shard: {v for v in values if v not in own_by_type.get(shard[0], empty)}
            for shard, values in found.items()
        }

    def _extend(self) -> int:
        assert self._oprf is not None
        added = 0
        for shard, values in sorted(self._scan().items()):
            selector_type, category, day = shard
            included = self._included.setdefault(shard, set())
            new = sorted(values - included)
            if not new:
                continue
            name = pb.SelectorType.Name(selector_type)
            golomb = GolombSet.build(
                (voprf.evaluate(self._oprf, selector_input(name, v)) for v in new),
                inverse_fp_rate=self._inverse,
            )
            header = pb.PrivateFilterHeader(
                node_id=self._node_id,
                selector_type=selector_type,  # type: ignore[arg-type]
                category=category,  # type: ignore[arg-type]
                epoch=self._epoch,
                public_key=self._oprf.pk,
                segment=len(self._segments),
                issued_at=_timestamp(self._clock()),
                expires_at=_timestamp(self.schedule.expires(self._epoch)),
            )
            if day != _UNDATED:
                header.day.CopyFrom(_timestamp(datetime.fromtimestamp(day * _DAY_SECONDS, UTC)))
            self._segments.append((shard, sign_segment(header, golomb, self._key)))
            included.update(new)
            added += 1
        return added
