"""What a verifier remembers between runs (the ``--state`` file), so a rewritten log cannot pass twice.

Three signed notes, each optional:

- ``checkpoint``: the newest checkpoint verified; the log must still hold that tree.
- ``quorum``: the newest checkpoint verified with a witness quorum, *with* those cosignature
  lines; the log must still show every one of them (cosignatures deleted to hide a rewrite
  are caught).
- ``pinned``: a checkpoint read from one's own country's node (what its witness last
  cosigned, never through the gateway); the log must hold that tree too.

Beside them, ``federation``: the exact bytes of the federation file version the verifier trusts,
so that a later run takes another file only as its signed next version
(:mod:`comity.core.federation_chain`).

The file is JSON (``{"format": "comity-verify-state/2", ...}``); a file holding one bare note,
as older versions wrote, is read as ``checkpoint`` (and written so while there is nothing else).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from comity.audit._atomic import write_atomically
from comity.audit.errors import LogVerificationError

__all__ = ["FORMAT", "VerifierState"]

FORMAT = "comity-verify-state/2"
_FIELDS = ("checkpoint", "quorum", "pinned")
_KEPT = (*_FIELDS, "federation")


@dataclass(frozen=True)
class VerifierState:
    """The notes a verifier remembers (bytes of signed notes, possibly with cosignature lines)."""

    checkpoint: bytes | None = None
    quorum: bytes | None = None
    pinned: bytes | None = None
    federation: bytes | None = None

    @classmethod
    def load(cls, path: Path | None) -> VerifierState:
        """Read ``path`` (an absent file is an empty state); raises :class:`LogVerificationError`."""
        if path is None or not path.exists():
            return cls()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LogVerificationError(f"the verifier state {path} cannot be read: {exc.strerror}") from None
        if not data.lstrip().startswith(b"{"):
            return cls(checkpoint=data)  # the older format: the last checkpoint's note alone
        try:
            raw = json.loads(data)
            known = raw.get("format") == FORMAT
            notes = {name: raw[name].encode() if raw.get(name) else None for name in _KEPT} if known else {}
        except (ValueError, AttributeError, TypeError):
            raise LogVerificationError(
                f"the verifier state {path} is damaged: it is not the JSON a verifier writes",
                hint="restore it from a backup; a new state file starts over, without the checkpoints "
                "and cosignatures this one remembers",
            ) from None
        if not known:
            raise LogVerificationError(
                f"the verifier state {path} is in a format this version does not read "
                f"({str(raw.get('format'))[:40]!r}; this version reads {FORMAT!r})",
                hint="verify with the Comity version that wrote it, or a newer one",
            )
        return cls(**notes)

    def save(self, path: Path) -> None:
        """Replace ``path`` atomically (a bare note, as older versions read, while that is all there is)."""
        if self.checkpoint is not None and (self.quorum, self.pinned, self.federation) == (None, None, None):
            write_atomically(path, self.checkpoint)
            return
        raw = {"format": FORMAT} | {name: (getattr(self, name) or b"").decode() or None for name in _KEPT}
        write_atomically(path, (json.dumps(raw, indent=2) + "\n").encode())

    def with_notes(self, **notes: bytes | None) -> VerifierState:
        """A copy with the given notes replaced (None keeps the old one)."""
        return replace(self, **{k: v for k, v in notes.items() if v is not None})
