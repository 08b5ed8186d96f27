"""Key histories: every key a party has signed with, each with the period it was valid for.

Keys are rotated by overlap: the new key is listed beside the old one, both are accepted for a
while, then the old one gets an end. Retired keys stay listed so that what they signed still
verifies. Two kinds of period exist:

- instants, for keys whose signed objects carry their own time (a witness cosignature's
  timestamp, a node statement's or a gateway decision's time): :class:`DatedKey`, whose
  ``[valid_from, valid_until)`` must hold that time;
- tree sizes, for the log's checkpoint key (a checkpoint of size *n* is signed by the key whose
  ``[from_size, until_size)`` holds *n*): :class:`SizedKey`.

A history is checked when it is built (see :class:`KeyHistory` and :class:`LogKeyHistory`): at
least one key, every period non-empty, no gap between the first period's start and the last
one's end, exactly one current key (no end), and no public key listed twice. A violation raises
:class:`KeyHistoryError` naming the entry and the field, which the federation loader turns into
an error naming the file's field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from comity.core.keys import VerifyingKey

__all__ = ["DatedKey", "KeyHistory", "KeyHistoryError", "KeysInForce", "LogKeyHistory", "SizedKey"]

_BEGINNING = datetime.min.replace(tzinfo=UTC)


class KeyHistoryError(ValueError):
    """A key history breaks a rule; ``index`` is the offending entry, ``field`` its field."""

    def __init__(self, message: str, *, index: int | None = None, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.index = index
        self.field = field


@dataclass(frozen=True, slots=True)
class DatedKey:
    """A key valid from ``valid_from`` (None: since the beginning) until ``valid_until`` (exclusive)."""

    key: VerifyingKey
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def holds(self, when: datetime) -> bool:
        """Whether ``when`` (timezone-aware) falls within this key's period."""
        started = self.valid_from is None or self.valid_from <= when
        return started and (self.valid_until is None or when < self.valid_until)


@dataclass(frozen=True, slots=True)
class SizedKey:
    """A log key for checkpoints of sizes ``from_size`` up to ``until_size`` (exclusive; None: current)."""

    key: VerifyingKey
    from_size: int = 0
    until_size: int | None = None

    def holds(self, size: int) -> bool:
        """Whether a checkpoint of ``size`` falls within this key's range."""
        return self.from_size <= size and (self.until_size is None or size < self.until_size)


def _check_distinct(keys: tuple[VerifyingKey, ...]) -> None:
    seen: dict[bytes, int] = {}
    for i, key in enumerate(keys):
        raw = key.public_key.public_bytes_raw()
        if raw in seen:
            raise KeyHistoryError(
                f"the same key is already listed as entry {seen[raw]}", index=i, field="key"
            )
        seen[raw] = i


def _current_index(ends: list[object | None]) -> int:
    if not ends:
        raise KeyHistoryError("a key history needs at least one key")
    current = [i for i, end in enumerate(ends) if end is None]
    if not current:
        raise KeyHistoryError("no key is current: exactly one key must have no end", index=len(ends) - 1)
    if len(current) > 1:
        raise KeyHistoryError(
            f"entries {current[0]} and {current[1]} both have no end: exactly one key is current",
            index=current[1],
        )
    return current[0]


@dataclass(frozen=True, slots=True)
class KeyHistory:
    """The dated keys of one signer (a node's witness or response key, the gateway's decision key)."""

    keys: tuple[DatedKey, ...]

    def __post_init__(self) -> None:
        _current_index([k.valid_until for k in self.keys])
        _check_distinct(tuple(k.key for k in self.keys))
        for i, k in enumerate(self.keys):
            for name, value in (("valid_from", k.valid_from), ("valid_until", k.valid_until)):
                if value is not None and value.utcoffset() is None:
                    raise KeyHistoryError(
                        "must be a date-time with an offset (like ...Z)", index=i, field=name
                    )
            if k.valid_from is not None and k.valid_until is not None and k.valid_until <= k.valid_from:
                raise KeyHistoryError("must be later than valid_from", index=i, field="valid_until")
        # Sweep the periods in order of start; a start after everything so far has ended is a gap.
        order = sorted(range(len(self.keys)), key=lambda i: self.keys[i].valid_from or _BEGINNING)
        reach = self.keys[order[0]].valid_until
        for i in order[1:]:
            k = self.keys[i]
            if reach is not None and k.valid_from is not None and k.valid_from > reach:
                raise KeyHistoryError(
                    f"leaves a gap: no key is valid from {reach.isoformat()} to {k.valid_from.isoformat()}",
                    index=i,
                    field="valid_from",
                )
            reach = None if reach is None or k.valid_until is None else max(reach, k.valid_until)

    @classmethod
    def single(cls, key: VerifyingKey) -> KeyHistory:
        """A one-key history, valid since the beginning (what a format-1 file's single key means)."""
        return cls((DatedKey(key),))

    @property
    def current(self) -> VerifyingKey:
        """The key in use now: the one without ``valid_until``."""
        return next(k.key for k in self.keys if k.valid_until is None)

    def at(self, when: datetime) -> tuple[VerifyingKey, ...]:
        """Every key valid at ``when`` (timezone-aware): two during an overlap, none outside the history."""
        if when.utcoffset() is None:
            raise ValueError("a key history is asked about a date-time without an offset")
        return tuple(k.key for k in self.keys if k.holds(when))

    def all(self) -> tuple[VerifyingKey, ...]:
        """Every key of the history, retired ones included, in the file's order."""
        return tuple(k.key for k in self.keys)


@dataclass(frozen=True, slots=True)
class LogKeyHistory:
    """The checkpoint-signing keys of the transparency log, by tree size."""

    keys: tuple[SizedKey, ...]

    def __post_init__(self) -> None:
        _current_index([k.until_size for k in self.keys])
        _check_distinct(tuple(k.key for k in self.keys))
        for i, k in enumerate(self.keys):
            if k.from_size < 0:
                raise KeyHistoryError("must be 0 or more", index=i, field="from_size")
            if k.until_size is not None and k.until_size <= k.from_size:
                raise KeyHistoryError("must be greater than from_size", index=i, field="until_size")
        order = sorted(range(len(self.keys)), key=lambda i: self.keys[i].from_size)
        reach = self.keys[order[0]].until_size
        for i in order[1:]:
            k = self.keys[i]
            if reach is not None and k.from_size > reach:
                raise KeyHistoryError(
                    f"leaves a gap: no key signs checkpoints of sizes {reach} to {k.from_size - 1}",
                    index=i,
                    field="from_size",
                )
            reach = None if reach is None or k.until_size is None else max(reach, k.until_size)

    @classmethod
    def single(cls, key: VerifyingKey) -> LogKeyHistory:
        """A one-key history for every tree size (what a format-1 file's ``log.key`` means)."""
        return cls((SizedKey(key),))

    @property
    def current(self) -> VerifyingKey:
        """The key signing new checkpoints: the one without ``until_size``."""
        return next(k.key for k in self.keys if k.until_size is None)

    def for_size(self, size: int) -> tuple[VerifyingKey, ...]:
        """Every key whose range holds ``size`` (two where ranges overlap, none before the first)."""
        return tuple(k.key for k in self.keys if k.holds(size))

    def all(self) -> tuple[VerifyingKey, ...]:
        """Every key of the history, retired ones included, in the file's order."""
        return tuple(k.key for k in self.keys)


class KeysInForce(Mapping[str, tuple[VerifyingKey, ...]]):
    """Signer id → the keys of its history valid at the clock's present instant.

    For checking signatures made a moment ago (a gateway decision at the node, a node's decision
    and statement at the gateway): during a rotation's overlap both keys are accepted, a key
    retired before now is not. Signed objects kept for later are checked by their own time
    (:meth:`KeyHistory.at`) instead.
    """

    def __init__(self, histories: Mapping[str, KeyHistory], clock: Callable[[], datetime]) -> None:
        self._histories = histories
        self._clock = clock

    def __getitem__(self, signer: str) -> tuple[VerifyingKey, ...]:
        return self._histories[signer].at(self._clock())

    def __iter__(self) -> Iterator[str]:
        return iter(self._histories)

    def __len__(self) -> int:
        return len(self._histories)
