"""Which checkpoint ``GetCheckpoint`` serves: the newest with a witness quorum, one size, or one witness's.

With no quorum checkpoint at all yet (a new log, witnesses down), size 0 gets the newest
checkpoint: the reader then sees it lacks a quorum, and every entry is "quorum pending".

The answer needs no trust: the reader verifies the log's signature and every cosignature under
the federation file, and judges the quorum itself. The gateway only finds the checkpoint.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from comity.audit.log import TransparencyLog
from comity.audit.quorum import Quorum
from comity.core.errors import NotFound
from comity.v1 import comity_pb2 as pb

__all__ = ["CheckpointFinder"]

_PAGE = 256


@dataclass(frozen=True)
class _Judged:
    """The quorum and its name ↔ id maps, replaced as one when the federation file changes."""

    quorum: Quorum
    ids: dict[str, str]  # cosignature name → witness id
    names: dict[str, str]  # witness id → cosignature name

    @classmethod
    def of(cls, quorum: Quorum) -> _Judged:
        return cls(quorum, {w.name: w.id for w in quorum.witnesses}, {w.id: w.name for w in quorum.witnesses})


class CheckpointFinder:
    """Finds checkpoints with their stored cosignatures in the gateway's log."""

    def __init__(self, log: TransparencyLog, quorum: Quorum) -> None:
        self._log = log
        self._quorum = _Judged.of(quorum)

    def use_quorum(self, quorum: Quorum) -> None:
        """Judge under a newly trusted federation file's witnesses and policy from now on."""
        self._quorum = _Judged.of(quorum)

    async def respond(self, request: pb.GetCheckpointRequest) -> pb.CheckpointResponse:
        """The checkpoint ``request`` asks for, with every cosignature stored on it."""
        if request.cosigned_by:
            size = await self.newest_cosigned_by(request.cosigned_by)
        elif request.tree_size:
            size = request.tree_size
        else:
            size = await self.newest_quorum()
        note = await self._log.checkpoint(size)
        newest, _ = self._log.newest_signed()
        return pb.CheckpointResponse(
            checkpoint=pb.Checkpoint(signed_note=note),
            cosignatures=await self._log.cosignatures(size),
            log_size=max(newest, size),
        )

    async def newest_quorum(self) -> int:
        """The size of the newest checkpoint whose stored cosignatures form a quorum (else the newest)."""
        judged, store = self._quorum, self._log.store
        below: int | None = None
        while True:
            page = await asyncio.to_thread(store.cosigners, below=below, limit=_PAGE)
            for size, names in page:
                if judged.quorum.is_quorum(judged.ids[n] for n in names if n in judged.ids):
                    return size
            if len(page) < _PAGE:
                return self._log.newest_signed()[0]
            below = page[-1][0]

    async def newest_cosigned_by(self, witness_id: str) -> int:
        """The size of the newest checkpoint carrying a cosignature of ``witness_id``."""
        name = self._quorum.names.get(witness_id)
        if name is None:
            raise NotFound(f"{witness_id!r} is not a witness of this federation")
        store = self._log.store
        below: int | None = None
        while True:
            page = await asyncio.to_thread(store.cosigners, below=below, limit=_PAGE)
            for size, names in page:
                if name in names:
                    return size
            if len(page) < _PAGE:
                raise NotFound(f"the log holds no cosignature of witness {witness_id!r}")
            below = page[-1][0]
