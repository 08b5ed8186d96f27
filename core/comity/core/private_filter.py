"""Private hit check filters: Golomb-coded sets of a node's VOPRF outputs, signed by the node.

A filter segment holds, for one selector type and data category, the set of
``VOPRF(k_epoch, input)`` for the node's selectors (:func:`selector_input`), each output mapped
into ``[0, count · inverse_fp_rate)`` and the sorted values coded as Rice-coded differences
(a Golomb-coded set, as BIP 158 uses). A value tests as present with probability
``1 / inverse_fp_rate`` when it was not added. Every ``index_interval`` values the bit offset and
the running value are indexed, so a look-up decodes at most one interval.

A Golomb-coded set cannot be updated in place: records loaded after a segment was built go
into a new segment of the same epoch, and a key rotation starts a new epoch whose first
segment holds everything again. Deleted selectors stay in the segments of the epoch until the
next rotation.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from google.protobuf.message import DecodeError

from comity.core.dsse import sign_envelope, verify_envelope
from comity.core.errors import InvalidArgument, Unauthenticated
from comity.core.keys import SigningKey, VerifyingKey
from comity.v1 import comity_pb2 as pb

__all__ = [
    "DEFAULT_INDEX_INTERVAL",
    "DEFAULT_INVERSE_FP_RATE",
    "PAYLOAD_PRIVATE_FILTER",
    "FilterSegment",
    "GolombSet",
    "commitment",
    "day_inside",
    "day_of",
    "selector_input",
    "sign_segment",
    "verify_segment",
    "whole_days",
]

PAYLOAD_PRIVATE_FILTER = "application/vnd.comity.private-filter+protobuf"
#: A false-positive rate of 10^-9 per tested selector and segment.
DEFAULT_INVERSE_FP_RATE = 10**9
DEFAULT_INDEX_INTERVAL = 256
_INPUT_PREFIX = b"comity/private-hit-check/v1\x00"
_COMMITMENT_PREFIX = b"comity/private-selector/v1\x00"
_INDEX_ENTRY = 16


_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)


def day_of(t: datetime) -> datetime:
    """The UTC midnight that starts ``t``'s day: what a dated segment's header names."""
    u = t.astimezone(UTC)
    return datetime(u.year, u.month, u.day, tzinfo=UTC)


def whole_days(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    """The whole UTC days inside ``[start, end]`` (both inclusive; None leaves a side open).

    ``start`` is rounded up to a midnight and ``end`` down to the last microsecond before one,
    so the range a private check signs is exactly the days it tests, and a HIT_CHECK over the
    same range reads the same records. The result may be empty (start after end).
    """
    first = None if start is None else (start if start == day_of(start) else day_of(start) + _DAY)
    last = None if end is None else day_of(end + _TICK) - _TICK
    return first, last


def day_inside(day: datetime, start: datetime | None, end: datetime | None) -> bool:
    """Whether the whole UTC day starting at ``day`` lies inside ``[start, end]``."""
    return (start is None or day >= start) and (end is None or day + _DAY - _TICK <= end)


def selector_input(selector_type: str, value: str) -> bytes:
    """The VOPRF input for a normalised selector: a domain prefix, its type name, NUL, its value."""
    return _INPUT_PREFIX + selector_type.encode() + b"\x00" + value.encode()


def commitment(salt: bytes, selector_type: str, value: str) -> bytes:
    """The salted commitment the investigator signs in place of the selector (32 bytes)."""
    if len(salt) != 32:
        raise InvalidArgument("a selector commitment's salt must be 32 bytes")
    return hashlib.sha256(
        _COMMITMENT_PREFIX + salt + selector_type.encode() + b"\x00" + value.encode()
    ).digest()


def _rice_bits(inverse_fp_rate: int) -> int:
    # The Golomb parameter nearest the optimum for gaps of mean M is about M·ln 2; Rice coding
    # rounds it to a power of two.
    return max(0, math.floor(math.log2(inverse_fp_rate * math.log(2))))


def _map(output: bytes, modulus: int) -> int:
    # Multiply-shift range reduction of the output's first 64 bits (outputs are uniform).
    return (int.from_bytes(output[:8], "big") * modulus) >> 64


@dataclass(frozen=True, slots=True)
class GolombSet:
    """A Golomb-coded set of 64-byte PRF outputs, with its look-up index."""

    count: int
    inverse_fp_rate: int
    rice_bits: int
    index_interval: int
    data: bytes
    index: bytes
    # The running value at the start of each indexed interval, parsed once.
    _starts: list[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = [int.from_bytes(self.index[i + 8 : i + 16], "big") for i in range(0, len(self.index), 16)]
        object.__setattr__(self, "_starts", starts)

    @classmethod
    def build(
        cls,
        outputs: Iterable[bytes],
        *,
        inverse_fp_rate: int = DEFAULT_INVERSE_FP_RATE,
        index_interval: int = DEFAULT_INDEX_INTERVAL,
    ) -> GolombSet:
        """Code ``outputs`` (duplicates count once)."""
        items = list(outputs)
        n = len(items)
        values = sorted({_map(o, n * inverse_fp_rate) for o in items}) if n else []
        return cls.from_values(
            values, count=n, inverse_fp_rate=inverse_fp_rate, index_interval=index_interval
        )

    @classmethod
    def from_values(
        cls, values: list[int], *, count: int, inverse_fp_rate: int, index_interval: int
    ) -> GolombSet:
        """Code sorted distinct ``values`` already mapped into ``[0, count · inverse_fp_rate)``."""
        p = _rice_bits(inverse_fp_rate)
        mask = (1 << p) - 1
        width = f"0{p}b"
        codes: list[str] = []
        index: list[bytes] = []
        offset = 0
        previous = 0
        for i, value in enumerate(values):
            if i % index_interval == 0:
                index.append(offset.to_bytes(8, "big") + previous.to_bytes(8, "big"))
            delta = value - previous
            code = "1" * (delta >> p) + "0" + (format(delta & mask, width) if p else "")
            codes.append(code)
            offset += len(code)
            previous = value
        bits = "".join(codes)
        bits += "0" * (-len(bits) % 8)
        data = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
        return cls(count, inverse_fp_rate, p, index_interval, data, b"".join(index))

    @property
    def digest(self) -> bytes:
        """SHA-256 over the index then the data: what a signed header commits to."""
        return hashlib.sha256(self.index + self.data).digest()

    def contains(self, output: bytes) -> bool:
        """Whether ``output`` tests as present (false positives at 1 / inverse_fp_rate)."""
        if self.count == 0:
            return False
        target = _map(output, self.count * self.inverse_fp_rate)
        starts = self._starts
        entries = len(starts)
        block = bisect.bisect_right(starts, target) - 1
        if block < 0:  # pragma: no cover - the first block starts at 0
            return False
        if block > 0 and starts[block] == target:
            return True
        offset = int.from_bytes(self.index[block * 16 : block * 16 + 8], "big")
        end = (
            int.from_bytes(self.index[(block + 1) * 16 : (block + 1) * 16 + 8], "big")
            if block + 1 < entries
            else len(self.data) * 8
        )
        return self._scan(offset, end, starts[block], target)

    def _scan(self, offset: int, end: int, running: int, target: int) -> bool:
        first, last = offset // 8, -(-end // 8)
        chunk = self.data[first:last]
        bits = bin(int.from_bytes(chunk, "big"))[2:].zfill(len(chunk) * 8) if chunk else ""
        pos, stop, p = offset - first * 8, end - first * 8, self.rice_bits
        while pos < stop:
            zero = bits.find("0", pos, stop)
            if zero < 0 or zero + 1 + p > stop:
                # Only the zero padding of the last byte is left (or nothing): no further value.
                return False
            delta = ((zero - pos) << p) | (int(bits[zero + 1 : zero + 1 + p], 2) if p else 0)
            pos = zero + 1 + p
            running += delta
            if running == target:
                return True
            if running > target:
                return False
        return False


@dataclass(frozen=True, slots=True)
class FilterSegment:
    """One verified segment: its signed header and its set."""

    header: pb.PrivateFilterHeader
    set: GolombSet

    def stale(self, now: datetime) -> bool:
        """Whether the segment's epoch has expired."""
        return self.header.expires_at.ToDatetime(tzinfo=UTC) <= now


def sign_segment(header: pb.PrivateFilterHeader, golomb: GolombSet, key: SigningKey) -> pb.PrivateFilter:
    """The wire filter: ``header`` completed with the set's parameters and digest, node-signed."""
    header.count = golomb.count
    header.inverse_fp_rate = golomb.inverse_fp_rate
    header.rice_bits = golomb.rice_bits
    header.index_interval = golomb.index_interval
    header.data_digest = golomb.digest
    envelope = sign_envelope(PAYLOAD_PRIVATE_FILTER, header.SerializeToString(), key)
    return pb.PrivateFilter(header=envelope, data=golomb.data, index=golomb.index)


def verify_segment(
    wire: pb.PrivateFilter, *, node_id: str, keys: Mapping[str, VerifyingKey]
) -> FilterSegment:
    """Check a node's filter: its signature by one of ``keys``, the node, the data's digest.

    Raises :class:`Unauthenticated` for a filter not signed by the node or whose data is not
    what it signed, :class:`InvalidArgument` for one that does not decode.
    """
    payload, _ = verify_envelope(
        wire.header, payload_type=PAYLOAD_PRIVATE_FILTER, keys=keys, what="private filter"
    )
    try:
        header = pb.PrivateFilterHeader.FromString(payload)
    except DecodeError:
        raise InvalidArgument("the private filter's header does not decode") from None
    if header.node_id != node_id:
        raise Unauthenticated(f"the private filter is {header.node_id!r}'s, not {node_id!r}'s")
    if header.index_interval == 0 or header.inverse_fp_rate == 0 or len(wire.index) % _INDEX_ENTRY:
        raise InvalidArgument("the private filter's parameters are malformed")
    golomb = GolombSet(
        header.count,
        header.inverse_fp_rate,
        header.rice_bits,
        header.index_interval,
        wire.data,
        wire.index,
    )
    if header.rice_bits != _rice_bits(header.inverse_fp_rate) or not hmac.compare_digest(
        golomb.digest, header.data_digest
    ):
        raise Unauthenticated("the private filter's data is not what the node signed")
    return FilterSegment(header, golomb)
