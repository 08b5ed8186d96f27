"""The node's witness on its mTLS port: C2SP tlog-witness add-checkpoint, and what it last cosigned.

The gateway submits its newest checkpoint on a timer (see ``comity.gateway.witnessing``), so
witnessing does not depend on queries. The protocol's outcomes map to statuses as the spec's
HTTP codes do: a cosignature (200); ``WITNESS_OLD_SIZE`` (409: the witness is at another size,
sent in the ``x-tlog-size`` trailer so the caller retries with the proof from there);
``WITNESS_FORK`` (409/422: the checkpoint contradicts one the witness cosigned, kept as
evidence); ``WITNESS_REFUSED`` (400/403: a bad signature or request).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import grpc

from comity.audit.errors import ConsistencyRequired, InconsistentLog, WitnessError
from comity.audit.witness import Witness
from comity.core.refusals import Check, refuse, register
from comity.core.rpc import guard_unary, to_trailing_metadata
from comity.core.tls import check_peer_certificate
from comity.nodes.membership import Membership
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["SIZE_TRAILER", "WitnessService"]

#: The trailer carrying the witness's size on a WITNESS_OLD_SIZE refusal (tlog-witness: text/x.tlog.size).
SIZE_TRAILER = "x-tlog-size"

_RULE = "AUDIT_FIELDS"
_BASIS = "Prüm Decision 2008/615 art. 30 (logs for lawfulness monitoring)"
register(
    Check(
        "WITNESS_OLD_SIZE",
        _RULE,
        grpc.StatusCode.FAILED_PRECONDITION,
        "this witness last cosigned tree size {size}, not {old}: send the consistency proof from {size}",
        _BASIS,
    ),
    Check(
        "WITNESS_FORK",
        _RULE,
        grpc.StatusCode.FAILED_PRECONDITION,
        "the checkpoint contradicts one this witness cosigned before ({reason}); it is kept as evidence",
        _BASIS,
    ),
    Check(
        "WITNESS_REFUSED",
        _RULE,
        grpc.StatusCode.INVALID_ARGUMENT,
        "the witness refused the checkpoint: {reason}",
        _BASIS,
    ),
)

_log = logging.getLogger("comity.node.witness")

Context = grpc.aio.ServicerContext[Any, Any]


class WitnessService(pb_grpc.WitnessServicer):
    """Serves one node's :class:`Witness` to the gateway (and, relayed by it, to the other witnesses)."""

    def __init__(
        self, witness: Witness, *, gateway_pins: Sequence[str], membership: Membership | None = None
    ) -> None:
        self._witness = witness
        self._pins = gateway_pins
        self._membership = membership

    def use_gateway_pins(self, pins: Sequence[str]) -> None:
        """Accept only these gateway client certificates from now on (a newly trusted federation file's)."""
        self._pins = tuple(pins)

    def _check_peer(self, context: Context) -> None:
        check_peer_certificate(context, self._pins, what="the caller")
        if self._membership is not None:  # a node the federation file no longer lists
            self._membership.require_member()

    @guard_unary
    async def AddCheckpoint(
        self, request: pb.AddCheckpointRequest, context: Context
    ) -> pb.AddCheckpointResponse:
        self._check_peer(context)
        try:
            line = await asyncio.to_thread(
                self._witness.add_checkpoint,
                request.old_size,
                list(request.consistency),
                request.checkpoint.signed_note,
            )
        except ConsistencyRequired as exc:
            err = refuse("WITNESS_OLD_SIZE", size=exc.from_size, old=request.old_size)
            # grpc.aio wants a tuple here, not a list.
            trailer: tuple[tuple[str, str | bytes], ...] = (
                *to_trailing_metadata(err),
                (SIZE_TRAILER, str(exc.from_size)),
            )
            await context.abort(err.code, err.message, trailing_metadata=trailer)
            raise AssertionError("unreachable: context.abort raises") from None
        except InconsistentLog as exc:
            _log.error("refused an inconsistent checkpoint, kept as evidence: %s", exc.message)
            raise refuse("WITNESS_FORK", reason=exc.message) from None
        except WitnessError as exc:
            raise refuse("WITNESS_REFUSED", reason=exc.message) from None
        return pb.AddCheckpointResponse(cosignatures=[line])

    @guard_unary
    async def GetLatestCosigned(
        self, request: pb.GetLatestCosignedRequest, context: Context
    ) -> pb.CheckpointResponse:
        self._check_peer(context)
        note = await asyncio.to_thread(self._witness.latest_cosigned)
        if note is None:
            return pb.CheckpointResponse()
        return pb.CheckpointResponse(checkpoint=pb.Checkpoint(signed_note=note))
