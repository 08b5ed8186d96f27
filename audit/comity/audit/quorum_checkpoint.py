"""A checkpoint, its cosignatures and the federation in; a quorum checkpoint (or why not) out.

:func:`open_quorum_checkpoint` verifies a checkpoint note and C2SP cosignature lines (given
beside it, or in the note) under the federation file, with the rules of
:class:`comity.audit.quorum.Quorum`, and says which witnesses cosigned and what a quorum still
lacks; :func:`verify_quorum_checkpoint` raises :class:`QuorumNotReached` when it is short. In order:

1. the log's signature, under the log key the federation lists for the checkpoint's tree size:
   a checkpoint signed by a retired log key outside its size range is refused;
2. each cosignature line by a witness the federation lists must verify under a key that witness
   held at the cosignature's own timestamp, and may not claim a time before ``not_before`` (less
   :data:`COSIGNATURE_CLOCK_SKEW`; say, the time the entries it covers were logged): else
   :class:`ForgedCosignature`. Lines by names the federation does not list are ignored, as C2SP
   signed notes require of unknown signers;
3. the witnesses with a valid cosignature (each counted once) against the witness policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from comity.audit.checkpoint import Checkpoint, SignedCheckpoint
from comity.audit.cosignature import cosignature_timestamp
from comity.audit.errors import UnverifiedNote
from comity.audit.note import Note, NoteSignature
from comity.audit.quorum import Quorum, open_log_checkpoint
from comity.core.federation import Federation

__all__ = [
    "COSIGNATURE_CLOCK_SKEW",
    "ForgedCosignature",
    "QuorumCheckpoint",
    "QuorumNotReached",
    "open_quorum_checkpoint",
    "verify_quorum_checkpoint",
]

#: How far a witness's clock may stand behind the gateway's when ``not_before`` is checked.
COSIGNATURE_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class QuorumCheckpoint:
    """A log-signed checkpoint, the witnesses whose cosignatures verified, and what a quorum lacks."""

    signed: SignedCheckpoint
    witnesses: tuple[str, ...]
    missing: Mapping[str, int] = field(default_factory=dict)

    @property
    def checkpoint(self) -> Checkpoint:
        """The verified tree head."""
        return self.signed.checkpoint

    @property
    def cosignatures(self) -> tuple[NoteSignature, ...]:
        """The cosignature lines that verified."""
        return self.signed.cosignatures

    @property
    def reached(self) -> bool:
        """True when every group of the witness policy has its threshold of cosignatures."""
        return not self.missing

    def describe_missing(self) -> str:
        """What a quorum still needs, for people: ``"1 cosignature(s) of group 'CA'"``."""
        return ", ".join(f"{n} cosignature(s) of group {g!r}" for g, n in sorted(self.missing.items()))


class ForgedCosignature(UnverifiedNote):
    """A cosignature by a witness the federation lists does not hold: bad signature, key or time."""


class QuorumNotReached(UnverifiedNote):
    """The checkpoint verifies, but its valid cosignatures fall short of the witness quorum."""

    def __init__(self, message: str, *, quorum: QuorumCheckpoint) -> None:
        super().__init__(message, hint="wait for the witnesses to cosign a newer checkpoint, then fetch it")
        self.quorum = quorum


def _lines(note: bytes, cosignatures: Sequence[str | NoteSignature], origin: str) -> list[NoteSignature]:
    own = [s for s in Note.parse(note).signatures if s.name != origin]
    given = [
        c if isinstance(c, NoteSignature) else NoteSignature.parse_line(c.rstrip("\n")) for c in cosignatures
    ]
    lines: list[NoteSignature] = []
    for line in own + given:
        if line not in lines:
            lines.append(line)
    return lines


def open_quorum_checkpoint(
    note: bytes,
    cosignatures: Sequence[str | NoteSignature],
    federation: Federation,
    *,
    not_before: datetime | None = None,
) -> QuorumCheckpoint:
    """Verify ``note`` and ``cosignatures`` (lines in the note count too) under ``federation``.

    Returns the checkpoint with the witnesses that cosigned and what a quorum still lacks. Raises
    :class:`UnverifiedNote` for a bad log signature, :class:`ForgedCosignature`, or
    :class:`~comity.audit.errors.InvalidNote` for a malformed note or line.
    """
    quorum = Quorum.of_federation(federation)
    origin = federation.gateway.log.origin
    opened = open_log_checkpoint(note, origin, federation.gateway.log.keys)
    listed = {w.name for w in quorum.witnesses}
    witnesses: list[str] = []
    valid: list[NoteSignature] = []
    for line in _lines(note, cosignatures, origin):
        if line.name not in listed:
            continue
        made = datetime.fromtimestamp(cosignature_timestamp(line), UTC)
        if not_before is not None and made < not_before - COSIGNATURE_CLOCK_SKEW:
            raise ForgedCosignature(
                f"the cosignature by witness {line.name!r} claims {made.isoformat()}, before the entries it "
                f"covers were logged ({not_before.isoformat()}): it is back-dated"
            )
        try:
            witness = quorum.verify(opened.text, line)
        except UnverifiedNote as exc:
            raise ForgedCosignature(exc.message) from None
        valid.append(line)
        if witness not in witnesses:
            witnesses.append(witness)
    missing = quorum.missing(witnesses)
    if not quorum.policy.is_quorum(witnesses) and not missing:
        missing = {"(the federation lists no witnesses)": 1}
    cosigned = SignedCheckpoint(opened.checkpoint, opened.note, tuple(valid))
    return QuorumCheckpoint(cosigned, tuple(witnesses), missing)


def verify_quorum_checkpoint(
    note: bytes,
    cosignatures: Sequence[str | NoteSignature],
    federation: Federation,
    *,
    not_before: datetime | None = None,
) -> QuorumCheckpoint:
    """:func:`open_quorum_checkpoint`, and raise :class:`QuorumNotReached` unless the quorum is reached."""
    quorum = open_quorum_checkpoint(note, cosignatures, federation, not_before=not_before)
    if not quorum.reached:
        raise QuorumNotReached(
            f"the checkpoint of size {quorum.checkpoint.size} lacks a witness quorum: it needs "
            f"{quorum.describe_missing()} more",
            quorum=quorum,
        )
    return quorum
