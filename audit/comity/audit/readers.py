"""Who reads which entry: the countries whose legal officers may read an entry's contents.

Checkpoints and proofs are public; an entry's *contents* are readable by the legal officers of
the countries it concerns, and by no one else. The rule, by kind of entry:

- ``decision``: the parties of the agreement it names; a decision under no agreement (a file
  without agreements) the requesting agency's country and the target node's country;
- ``refused`` (before policy, ``NO_AGREEMENT`` included): the requesting agency's country and
  the country of the node the request names (entries written before they named it: the
  requesting country only);
- ``forwarded``, ``disclosed``, ``failed``, ``node_decision`` and ``emergency``: whoever reads
  the query's decision (same ``query_id``); an ``emergency`` without one: the requesting
  agency's country and the order's issuing country;
- ``validated``: whoever reads the order's ``emergency`` entry, else the agency's country;
- ``throttled`` (one aggregate of refusals past a rate limit): the countries of the agencies it
  lists;
- an entry that does not decode, or whose parties are unknown to the federation: no one.

:class:`ReaderIndex` applies the rule in log order, remembering each query's and emergency
order's readers, because most of a query's entries name only its id. The same rule runs on
the gateway (to decide what to serve) and at the officer's side (to count, per set of
countries, what each officer should have been shown; see :class:`ReadableSets`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from comity.audit.errors import AuditError
from comity.audit.events import (
    DecisionEvent,
    EmergencyEvent,
    RefusedEvent,
    ThrottledEvent,
    ValidatedEvent,
    decode_event,
)

if TYPE_CHECKING:
    from comity.core.federation import Federation

__all__ = ["NO_ONE", "ReadableSets", "ReaderIndex", "Readership", "readers_label"]

Readers = frozenset[str]
#: Readers of an entry no officer may read.
NO_ONE: Readers = frozenset()


@dataclass(frozen=True, slots=True)
class Readership:
    """The federation's facts the rule needs: countries of agencies and nodes, parties of agreements."""

    agency_country: Mapping[str, str]
    node_country: Mapping[str, str]
    agreement_parties: Mapping[str, tuple[str, ...]]

    @classmethod
    def of_federation(cls, federation: Federation) -> Readership:
        """The readership under ``federation`` (agreements by id; members and nodes by id)."""
        return cls(
            agency_country={m.agency: m.country for m in federation.members},
            node_country={n.id: n.country for n in federation.nodes()},
            agreement_parties={a.id: tuple(a.parties) for a in federation.agreements},
        )

    def countries_of(self, *, agencies: Iterable[str] = (), nodes: Iterable[str] = ()) -> Readers:
        """The countries of ``agencies`` and ``nodes`` (those the federation knows)."""
        found = {self.agency_country.get(a, "") for a in agencies} | {
            self.node_country.get(n, "") for n in nodes
        }
        return frozenset(found - {""})


@dataclass(slots=True)
class ReaderIndex:
    """The readers of each entry, fed in log order (``readers(i, data)`` for i = 0, 1, ...)."""

    readership: Readership
    _by_query: dict[str, Readers] = field(default_factory=dict)
    _by_order: dict[str, Readers] = field(default_factory=dict)
    _interned: dict[Readers, Readers] = field(default_factory=dict)
    #: The readers of every entry seen, by index (one reference each: the sets are shared).
    by_index: list[Readers] = field(default_factory=list)

    @property
    def size(self) -> int:
        """How many entries have been seen."""
        return len(self.by_index)

    def readers(self, data: bytes) -> Readers:
        """The countries whose officers may read the next entry, ``data``."""
        found = self._judge(data)
        self.by_index.append(found)
        return found

    def _judge(self, data: bytes) -> Readers:
        try:
            event = decode_event(data)
        except AuditError:
            return NO_ONE
        found = self._rule(event)
        # A handful of distinct sets: keep one object of each, not one per entry.
        found = self._interned.setdefault(found, found)
        query_id = getattr(event, "query_id", "")
        if isinstance(event, DecisionEvent | RefusedEvent) and query_id:
            self._by_query[query_id] = found
        if isinstance(event, EmergencyEvent):
            self._by_order[event.order_id] = found
        return found

    def _rule(self, event: object) -> Readers:
        r = self.readership
        if isinstance(event, DecisionEvent):
            if event.agreement:
                parties = r.agreement_parties.get(event.agreement)
                return frozenset(parties) if parties else NO_ONE
            return r.countries_of(agencies=[event.agency], nodes=[event.target_node])
        if isinstance(event, RefusedEvent):
            return r.countries_of(agencies=[event.agency], nodes=[event.target_node])
        if isinstance(event, EmergencyEvent):
            known = self._by_query.get(event.query_id)
            if known is not None:
                return known
            return r.countries_of(agencies=[event.agency]) | ({event.issuing_country} - {""})
        if isinstance(event, ValidatedEvent):
            return self._by_order.get(event.order_id) or r.countries_of(agencies=[event.agency])
        if isinstance(event, ThrottledEvent):
            return r.countries_of(agencies=[agency for _, agency, _ in event.by_requester])
        # forwarded, disclosed, failed, node_decision: the query's readers.
        return self._by_query.get(str(getattr(event, "query_id", "")), NO_ONE)


def readers_label(readers: Readers) -> str:
    """The set as officers compare it: sorted country codes joined by ``+`` (``"CA+US"``)."""
    return "+".join(sorted(readers)) or "(no one)"


@dataclass(slots=True)
class ReadableSets:
    """Per set of reader countries, how many entries an officer was shown and a fingerprint of which.

    The fingerprint is SHA-256 over ``index (8 bytes, big-endian) || leaf hash`` of every entry
    of that set, in log order. Two officers of countries in the same set (a US and a Canadian
    officer for ``CA+US``) must find the same count and fingerprint up to the same tree size:
    a gateway that withholds one of them an entry their country may read shows them different
    ones.
    """

    _counts: dict[Readers, int] = field(default_factory=dict)
    _hashes: dict[Readers, hashlib._Hash] = field(default_factory=dict)
    withheld: int = 0

    def add(self, index: int, leaf_hash: bytes, readers: Readers) -> None:
        """Count entry ``index`` (shown in full) under its ``readers``."""
        self._counts[readers] = self._counts.get(readers, 0) + 1
        digest = self._hashes.get(readers)
        if digest is None:
            digest = self._hashes[readers] = hashlib.sha256()
        digest.update(index.to_bytes(8, "big") + leaf_hash)

    def add_withheld(self) -> None:
        """Count an entry the officer was shown only the leaf hash of."""
        self.withheld += 1

    def summary(self) -> list[tuple[str, int, str]]:
        """``(label, count, fingerprint hex)`` per set of readers, sorted by label."""
        return sorted(
            (readers_label(readers), n, self._hashes[readers].hexdigest())
            for readers, n in self._counts.items()
        )
