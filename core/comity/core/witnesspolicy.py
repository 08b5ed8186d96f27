"""The witness policy: which cosignatures make a checkpoint count.

Witnesses are arranged in groups: one per member country (the witnesses of its nodes) and
optional groups of independent witnesses (a court, an NGO). A set of cosigning witnesses is a
**quorum** when, in every group, at least the group's threshold of its witnesses cosigned.

The policy is checked when it is built (:meth:`WitnessPolicy.check`): every threshold is between
one and the group's size and exceeds half of it (``2·threshold > n``), and no witness is in two
groups. Since a quorum needs every group, two disjoint sets of witnesses can then never both be
quorums: in any one group, two disjoint sets of more than half its witnesses cannot both exist.
So two forks of the log can never both be quorum-cosigned. A policy without groups (a federation
without witnesses) accepts nothing as a quorum.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from comity.core.errors import NotFound
from comity.core.keyhistory import KeyHistory

__all__ = [
    "DEFAULT_MAX_DELAY",
    "WitnessGroup",
    "WitnessIdentity",
    "WitnessPolicy",
    "WitnessPolicyError",
    "parse_duration",
]

DEFAULT_MAX_DELAY = timedelta(seconds=30)
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_UNITS = {"ms": timedelta(milliseconds=1), "s": timedelta(seconds=1), "m": timedelta(minutes=1)}
_UNITS["h"] = timedelta(hours=1)


class WitnessPolicyError(ValueError):
    """A policy breaks a rule; ``group`` is the offending group's index, ``field`` its field."""

    def __init__(self, message: str, *, group: int | None = None, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.group = group
        self.field = field


@dataclass(frozen=True, slots=True)
class WitnessIdentity:
    """A witness: a node's witness (``id`` is the node id) or an independent one.

    ``name`` is the key name its C2SP cosignature lines carry (the id, which holds no spaces or
    ``+``); ``display_name`` is for people. ``tls_cert`` (independent witnesses) is its server
    certificate, pinned by ``tls_cert_pins``: what the gateway trusts when it calls it.
    """

    id: str
    name: str
    country: str | None
    endpoint: str
    keys: KeyHistory
    display_name: str = ""
    tls_cert_pins: tuple[str, ...] = ()
    tls_cert: Path | None = None

    @property
    def host(self) -> str:
        """The endpoint's host (the name its certificate must carry)."""
        return self.endpoint.rsplit(":", 1)[0].strip("[]")


@dataclass(frozen=True, slots=True)
class WitnessGroup:
    """A group of witnesses of which at least ``threshold`` must cosign."""

    name: str
    country: str | None
    witnesses: tuple[str, ...]
    threshold: int


@dataclass(frozen=True, slots=True)
class WitnessPolicy:
    """The quorum: ``threshold`` cosignatures in every group, each entry cosigned within ``max_delay``."""

    groups: tuple[WitnessGroup, ...]
    max_delay: timedelta = DEFAULT_MAX_DELAY

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise :class:`WitnessPolicyError` naming the group unless every rule of the policy holds."""
        if self.max_delay <= timedelta(0):
            raise WitnessPolicyError("must be longer than zero", field="max_delay")
        names: dict[str, int] = {}
        members: dict[str, int] = {}
        for i, g in enumerate(self.groups):
            if g.name in names:
                raise WitnessPolicyError(
                    f"group {g.name!r} is already defined as group {names[g.name]}", group=i
                )
            names[g.name] = i
            for w in g.witnesses:
                if w in members:
                    where = (
                        "twice in this group"
                        if members[w] == i
                        else f"in group {self.groups[members[w]].name!r}"
                    )
                    raise WitnessPolicyError(
                        f"witness {w!r} is already {where}: each witness belongs to exactly one group",
                        group=i,
                        field="witnesses",
                    )
                members[w] = i
            _check_threshold(g, i)

    def is_quorum(self, witness_ids: Iterable[str]) -> bool:
        """Whether these witnesses (each counted once) meet every group's threshold.

        A policy without groups (a federation without witnesses) has no quorum at all.
        """
        return bool(self.groups) and not self.missing(witness_ids)

    def missing(self, witness_ids: Iterable[str]) -> dict[str, int]:
        """Group name → cosignatures still needed, for each group short of its threshold (empty: quorum)."""
        present = set(witness_ids)
        short = {g.name: g.threshold - len(present.intersection(g.witnesses)) for g in self.groups}
        return {name: need for name, need in short.items() if need > 0}

    def group_of_country(self, country: str) -> WitnessGroup:
        """The group of ``country``'s node witnesses; raises :class:`NotFound`."""
        for g in self.groups:
            if g.country == country:
                return g
        raise NotFound(f"the witness policy has no group for country {country!r}")

    @classmethod
    def every_country(
        cls, witnesses: Iterable[WitnessIdentity], *, max_delay: timedelta = DEFAULT_MAX_DELAY
    ) -> WitnessPolicy:
        """One group per country with all of its witnesses (the policy of a file that states none)."""
        by_country: dict[str, list[str]] = {}
        for w in witnesses:
            if w.country is not None:
                by_country.setdefault(w.country, []).append(w.id)
        groups = tuple(WitnessGroup(c, c, tuple(ids), len(ids)) for c, ids in by_country.items())
        return cls(groups, max_delay)


def _check_threshold(g: WitnessGroup, i: int) -> None:
    n = len(g.witnesses)
    if n == 0:
        raise WitnessPolicyError(f"group {g.name!r} has no witnesses", group=i, field="witnesses")
    if not 1 <= g.threshold <= n:
        raise WitnessPolicyError(
            f"group {g.name!r}: threshold must be between 1 and its {n} witnesses; got {g.threshold}",
            group=i,
            field="threshold",
        )
    if 2 * g.threshold <= n:
        raise WitnessPolicyError(
            f"group {g.name!r}: threshold {g.threshold} of {n} witnesses lets two disjoint sets of "
            f"witnesses both form a quorum (two forks could both be cosigned); it must exceed half, "
            f"at least {n // 2 + 1}",
            group=i,
            field="threshold",
        )


def parse_duration(text: str) -> timedelta:
    """``"30s"``, ``"500ms"``, ``"2m"``, ``"1h"``; raises :class:`ValueError` for anything else."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like '30s', '500ms', '2m' or '1h'")
    return int(match.group(1)) * _UNITS[match.group(2)]
