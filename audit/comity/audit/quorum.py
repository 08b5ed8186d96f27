"""Which cosignatures count, and whether they form a quorum: what every verifier of the log decides.

A cosignature line (C2SP tlog-cosignature) names its witness and states when it was made; it
counts only if it verifies under a key that witness held at that instant (``keys.at(t)``), so
logs verify across witness key rotations. A checkpoint of size *n* is the log's only if signed
by a key whose tree sizes hold *n* (``log_keys.for_size(n)``). A checkpoint counts only with a
quorum under the witness policy: in every group, at least its threshold of valid cosignatures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from comity.audit.checkpoint import SignedCheckpoint, open_checkpoint
from comity.audit.cosignature import CosignatureVerifier, cosignature_timestamp
from comity.audit.errors import AuditError, InvalidNote, UnverifiedNote
from comity.audit.note import Ed25519Verifier, Note, NoteSignature
from comity.core.federation import Federation
from comity.core.keys import VerifyingKey

__all__ = [
    "DatedKeys",
    "Quorum",
    "QuorumRule",
    "SizedKeys",
    "WitnessKeys",
    "note_cosignatures",
    "open_log_checkpoint",
]


class DatedKeys(Protocol):
    """A key history over time (``comity.core.keyhistory.KeyHistory``)."""

    def at(self, when: datetime) -> tuple[VerifyingKey, ...]:
        """Every key valid at ``when``."""
        ...


class SizedKeys(Protocol):
    """A key history over tree sizes (``comity.core.keyhistory.LogKeyHistory``)."""

    def for_size(self, size: int) -> tuple[VerifyingKey, ...]:
        """Every key whose tree sizes hold ``size``."""
        ...


class QuorumRule(Protocol):
    """The witness policy (``comity.core.witnesspolicy.WitnessPolicy``)."""

    def is_quorum(self, witness_ids: Iterable[str]) -> bool:
        """Whether these witnesses' cosignatures form a quorum."""
        ...

    def missing(self, witness_ids: Iterable[str]) -> dict[str, int]:
        """Group name → cosignatures still needed."""
        ...


@dataclass(frozen=True, slots=True)
class WitnessKeys:
    """One witness as verifiers know it: its id in the policy, its cosignature name, its keys."""

    id: str
    name: str
    keys: DatedKeys


@dataclass(frozen=True, slots=True)
class _Fixed:
    """A history of one key, valid always (a federation file without key periods)."""

    key: VerifyingKey

    def at(self, when: datetime) -> tuple[VerifyingKey, ...]:
        return (self.key,)

    def for_size(self, size: int) -> tuple[VerifyingKey, ...]:
        return (self.key,)


def fixed_keys(key: VerifyingKey) -> DatedKeys:
    """A one-key history valid at every instant and size."""
    return _Fixed(key)


def note_cosignatures(data: bytes, origin: str) -> list[NoteSignature]:
    """Every signature line of a note that is not the log's (named by its origin): unverified."""
    return [s for s in Note.parse(data).signatures if s.name != origin]


def open_log_checkpoint(data: bytes, origin: str, log_keys: SizedKeys) -> SignedCheckpoint:
    """Open a checkpoint note under the log key its own tree size calls for; raises :class:`AuditError`."""
    note = Note.parse(data)
    lines = note.text.split("\n")
    if len(lines) < 3 or not lines[1].isdigit():
        raise InvalidNote("a checkpoint body needs an origin, a tree size and a root hash line")
    size = int(lines[1])
    candidates = log_keys.for_size(size)
    if not candidates:
        raise UnverifiedNote(f"the federation names no log key for tree size {size}")
    last: AuditError | None = None
    for key in candidates:
        try:
            return open_checkpoint(data, Ed25519Verifier(origin, key.public_key))
        except UnverifiedNote as exc:
            last = exc
    assert last is not None
    raise last


@dataclass(frozen=True)
class Quorum:
    """The witnesses a verifier trusts, their key histories, and the policy a quorum must meet."""

    witnesses: Sequence[WitnessKeys]
    policy: QuorumRule
    max_delay: timedelta = timedelta(seconds=30)
    #: The log's keys by tree size (None: the one key the verifier is given).
    log_keys: SizedKeys | None = None

    def open(self, data: bytes, log_key: Ed25519Verifier) -> SignedCheckpoint:
        """Open a checkpoint note under the log key its size calls for (else ``log_key``)."""
        if self.log_keys is None:
            return open_checkpoint(data, log_key)
        return open_log_checkpoint(data, log_key.name, self.log_keys)

    def _by_name(self) -> Mapping[str, WitnessKeys]:
        return {w.name: w for w in self.witnesses}

    def verify(self, text: str, signature: NoteSignature, *, now: datetime | None = None) -> str:
        """The witness id of a cosignature on checkpoint ``text``; raises :class:`UnverifiedNote`.

        The key must be one the witness held at the cosignature's own timestamp. With ``now``
        (a cosignature being accepted, not one kept from before), it must be in force at ``now``
        as well: a key retired or revoked since cannot add a line, whatever time the line claims.
        """
        witness = self._by_name().get(signature.name)
        if witness is None:
            raise UnverifiedNote(f"cosignature by unknown witness {signature.name!r}")
        made = datetime.fromtimestamp(cosignature_timestamp(signature), UTC)
        held = witness.keys.at(made)
        if now is not None:
            current = {k.public_key.public_bytes_raw() for k in witness.keys.at(now)}
            held = tuple(k for k in held if k.public_key.public_bytes_raw() in current)
        for key in held:
            verifier = CosignatureVerifier(witness.name, key.public_key)
            if verifier.key_id == signature.key_id:
                verifier.verify(text, signature)
                return witness.id
        when = "at that time" if now is None else "at that time and now"
        raise UnverifiedNote(
            f"the cosignature by witness {signature.name!r} made at {made.isoformat()} is by no key "
            f"the federation file lists for it {when}"
        )

    def cosigners(self, text: str, lines: Iterable[str]) -> dict[str, str]:
        """Witness id → cosignature name of every line; any line that does not verify raises."""
        ids: dict[str, str] = {}
        for line in lines:
            signature = NoteSignature.parse_line(line.rstrip("\n"))
            ids[self.verify(text, signature)] = signature.name
        return ids

    def is_quorum(self, witness_ids: Iterable[str]) -> bool:
        """Whether the policy's every group is met."""
        return self.policy.is_quorum(witness_ids)

    def missing(self, witness_ids: Iterable[str]) -> dict[str, int]:
        """Group → cosignatures still needed."""
        return self.policy.missing(witness_ids)

    @classmethod
    def of_federation(cls, federation: Federation) -> Quorum:
        """The federation file's witnesses, their key histories and its witness policy."""
        witnesses = [WitnessKeys(w.id, w.name, w.keys) for w in federation.witness_identities()]
        policy = federation.witness_policy
        return cls(witnesses, policy, policy.max_delay, federation.gateway.log.keys)

    @classmethod
    def every_witness(
        cls, verifiers: Sequence[CosignatureVerifier], *, max_delay: timedelta = timedelta(seconds=30)
    ) -> Quorum:
        """A quorum of every one of ``verifiers`` (one key each, valid always): for tools without a policy."""
        keys = [
            WitnessKeys(v.name, v.name, fixed_keys(VerifyingKey(v.name, v.public_key))) for v in verifiers
        ]
        return cls(keys, _All(frozenset(v.name for v in verifiers)), max_delay)


@dataclass(frozen=True)
class _All:
    ids: frozenset[str]

    def is_quorum(self, witness_ids: Iterable[str]) -> bool:
        return self.ids <= set(witness_ids)

    def missing(self, witness_ids: Iterable[str]) -> dict[str, int]:
        short = len(self.ids - set(witness_ids))
        return {"all witnesses": short} if short else {}
