"""The AuditLog gRPC service: what legal officers and witnesses read from the gateway's log.

Everything it serves is verifiable by the reader (signed checkpoints, proofs), so the service
is read-only and its answers need no trust. Who may ask differs by what is asked:

- checkpoints and proofs are hashes and signatures only; nodes' witnesses and anyone holding
  a receipt need them, so any TLS client may read them;
- entries say who investigated under which order and offence. Pseudonymous as they are, that
  is itself sensitive, so only a legal officer registered in the federation file, with a valid
  token from their agency's issuer, may read them. Refusals go to the process log (the caller
  is not a registered investigator, so the audit log itself is not theirs to fill);
- an officer reads only the entries their country may read (:mod:`comity.audit.readers`: the
  entries of the agreements it is party to, its own agencies' refusals and throttling). Every
  other entry in the range is served *withheld*: its index and leaf hash, no contents, so the
  officer still recomputes the whole tree and checks it against the signed checkpoints.

Entries are served in bounded pages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc

from comity.audit.readers import ReaderIndex, Readers, Readership
from comity.audit.rfc6962 import hash_leaf
from comity.core.errors import ComityError, InvalidArgument
from comity.core.rpc import guard_unary
from comity.core.tokens import TokenVerifier, VerifiedOfficer, bearer_token
from comity.gateway.checkpoints import CheckpointFinder
from comity.gateway.ledger import Ledger
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["MAX_ENTRIES_PER_CALL", "AuditLogService"]

MAX_ENTRIES_PER_CALL = 1000

Context = grpc.aio.ServicerContext[Any, Any]

_log = logging.getLogger("comity.gateway.audit")


class _EntryReaders:
    """The readers of every entry up to the log's size, judged once, in log order."""

    def __init__(self, ledger: Ledger, readership: Readership) -> None:
        self._ledger = ledger
        self._index = ReaderIndex(readership)
        self._lock = asyncio.Lock()

    async def of(self, start: int, end: int) -> list[Readers]:
        """The readers of entries ``[start, end)`` (every entry below ``end`` is judged first)."""
        async with self._lock:
            while self._index.size < end:
                first = self._index.size
                for data in await self._ledger.entries(first, min(end, first + MAX_ENTRIES_PER_CALL)):
                    self._index.readers(data)
                if self._index.size == first:
                    break  # the log is shorter than asked
            return self._index.by_index[start:end]


class AuditLogService(pb_grpc.AuditLogServicer):
    """Serves checkpoints, entries and proofs from the gateway's ledger."""

    def __init__(
        self,
        ledger: Ledger,
        tokens: TokenVerifier,
        *,
        readership: Readership,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        checkpoints: CheckpointFinder | None = None,
    ) -> None:
        self._ledger = ledger
        self._checkpoints = checkpoints
        self._tokens = tokens
        self._readers = _EntryReaders(ledger, readership)
        self._clock = clock

    def use_federation(self, tokens: TokenVerifier, readership: Readership) -> None:
        """Check officers' tokens, and judge who reads what, under a newly trusted federation file."""
        self._tokens = tokens
        # Agreements and members may have changed: every entry is judged again under the new file.
        self._readers = _EntryReaders(self._ledger, readership)

    def _legal_officer(self, context: Context, what: str) -> VerifiedOfficer:
        try:
            return self._tokens.verify_legal_officer(
                bearer_token(context.invocation_metadata()), now=self._clock()
            )
        except ComityError as err:
            _log.warning("refused to read %s for %s: %s", what, context.peer(), err.message)
            raise

    @guard_unary
    async def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, context: Context
    ) -> pb.CheckpointResponse:
        if self._checkpoints is not None:
            return await self._checkpoints.respond(request)
        note, cosignatures = await self._ledger.latest_checkpoint()
        return pb.CheckpointResponse(checkpoint=pb.Checkpoint(signed_note=note), cosignatures=cosignatures)

    @guard_unary
    async def GetEntries(self, request: pb.GetEntriesRequest, context: Context) -> pb.GetEntriesResponse:
        if request.end <= request.start:
            raise InvalidArgument("end must be greater than start (end is exclusive)")
        end = min(request.end, request.start + MAX_ENTRIES_PER_CALL)
        officer = self._legal_officer(context, f"entries [{request.start}, {end})")
        entries = await self._ledger.entries(request.start, end)
        readers = await self._readers.of(request.start, request.start + len(entries))
        served = [
            _served(request.start + i, data, officer.country in who)
            for i, (data, who) in enumerate(zip(entries, readers, strict=True))
        ]
        withheld = sum(e.withheld for e in served)
        _log.info(
            "legal officer %s (%s) read entries [%d, %d), %d withheld",
            officer.subject,
            officer.country,
            request.start,
            end,
            withheld,
        )
        return pb.GetEntriesResponse(entries=served)

    @guard_unary
    async def GetInclusionProof(
        self, request: pb.GetInclusionProofRequest, context: Context
    ) -> pb.InclusionProof:
        size = request.tree_size or await self._ledger.tree_size()
        which = request.WhichOneof("leaf")
        if which is None:
            raise InvalidArgument("give leaf_index or leaf_hash")
        if which == "leaf_hash":
            index, hashes = await self._ledger.inclusion_proof_by_leaf_hash(request.leaf_hash, size)
        else:
            index, hashes = await self._ledger.inclusion_proof(request.leaf_index, size)
        return pb.InclusionProof(leaf_index=index, tree_size=size, hashes=hashes)

    @guard_unary
    async def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, context: Context
    ) -> pb.ConsistencyProof:
        hashes = await self._ledger.consistency_proof(request.first_size, request.second_size)
        return pb.ConsistencyProof(
            first_size=request.first_size, second_size=request.second_size, hashes=hashes
        )


def _served(index: int, data: bytes, readable: bool) -> pb.LogEntry:
    if readable:
        return pb.LogEntry(index=index, data=data)
    return pb.LogEntry(index=index, withheld=True, leaf_hash=hash_leaf(data))
