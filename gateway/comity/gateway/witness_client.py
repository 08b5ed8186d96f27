"""The gateway's side of C2SP tlog-witness: submit a checkpoint to one witness, read what it last cosigned.

A witness at another size than the gateway believed answers ``WITNESS_OLD_SIZE`` with its size in
the ``x-tlog-size`` trailer; :meth:`WitnessClient.add_checkpoint` retries once from there with the
right consistency proof, as the spec intends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from comity.core.errors import ComityError, FailedPrecondition, RuleViolationInfo, Unavailable
from comity.core.rpc import error_from_status
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["SIZE_TRAILER", "ForkRefused", "WitnessAt", "WitnessCalls", "WitnessClient", "witness_size"]

#: The trailer in which a witness that is at another size says which (tlog-witness: text/x.tlog.size).
SIZE_TRAILER = "x-tlog-size"


def witness_size(trailing_metadata: object) -> int | None:
    """The witness's tree size from a refusal's ``x-tlog-size`` trailer, if it sent one."""
    pairs: Iterable[tuple[str, str | bytes]] = trailing_metadata or ()  # type: ignore[assignment]
    for key, value in pairs:
        if key == SIZE_TRAILER:
            text = value.decode() if isinstance(value, bytes) else str(value)
            if text.isdigit():
                return int(text)
    return None


#: Fetches the consistency proof between two tree sizes from the log.
ProofSource = Callable[[int, int], Awaitable[Sequence[bytes]]]


class WitnessAt(FailedPrecondition):
    """The witness is at another size than the one the request started from."""

    def __init__(self, message: str, *, size: int, violations: list[RuleViolationInfo] | None = None) -> None:
        super().__init__(message, violations=violations)
        self.size = size


class ForkRefused(FailedPrecondition):
    """The witness refused the checkpoint as inconsistent with one it cosigned before."""


class WitnessCalls(Protocol):
    """The calls of a witness's service: a ``WitnessStub``, or the node router's (which connects first)."""

    def AddCheckpoint(
        self, request: pb.AddCheckpointRequest, *, timeout: float
    ) -> Awaitable[pb.AddCheckpointResponse]: ...

    def GetLatestCosigned(
        self, request: pb.GetLatestCosignedRequest, *, timeout: float
    ) -> Awaitable[pb.CheckpointResponse]: ...


@dataclass
class WitnessClient:
    """One witness's service, reached over an established (mTLS) channel."""

    witness_id: str
    stub: WitnessCalls | pb_grpc.WitnessStub
    deadline: float
    known_size: int = 0  # the size this witness last cosigned, as far as the gateway knows

    async def add_checkpoint(self, note: bytes, size: int, proofs: ProofSource) -> list[str]:
        """Submit the checkpoint ``note`` of ``size``; the cosignature lines, after at most one retry.

        Raises :class:`WitnessAt` when the witness is ahead of ``size`` (another gateway replica
        moved it), :class:`ForkRefused`, or the witness's own error (``Unavailable`` when down).
        """
        for attempt in range(2):
            old = self.known_size
            if old > size:
                raise WitnessAt(f"witness {self.witness_id} is at size {old}, past {size}", size=old)
            proof = list(await proofs(old, size)) if 0 < old < size else []
            request = pb.AddCheckpointRequest(
                old_size=old, consistency=proof, checkpoint=pb.Checkpoint(signed_note=note)
            )
            try:
                response: pb.AddCheckpointResponse = await self.stub.AddCheckpoint(
                    request, timeout=self.deadline
                )
            except grpc.aio.AioRpcError as exc:
                err = self._error(exc)
                if isinstance(err, WitnessAt) and attempt == 0:
                    self.known_size = err.size
                    continue
                raise err from None
            self.known_size = size
            return list(response.cosignatures)
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def latest_cosigned(self) -> bytes | None:
        """The latest checkpoint this witness cosigned, with its cosignature line (None before any)."""
        try:
            response: pb.CheckpointResponse = await self.stub.GetLatestCosigned(
                pb.GetLatestCosignedRequest(), timeout=self.deadline
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None
        return response.checkpoint.signed_note or None

    def _error(self, exc: grpc.aio.AioRpcError) -> ComityError:
        code = exc.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return Unavailable(f"witness {self.witness_id} did not answer: {code.name}")
        trailer = exc.trailing_metadata() or ()
        size = witness_size(trailer)
        if size is not None:
            return WitnessAt(exc.details() or "", size=size)
        err = error_from_status(code, f"witness {self.witness_id}: {exc.details()}", trailer)
        if any(v.check == "WITNESS_FORK" for v in err.violations):
            return ForkRefused(err.message, violations=err.violations)
        return err
