"""A witness never forgets silently: the node checks its witness state against the log before serving.

A witness that lost its state (a new disk, a restored backup) would cosign from scratch, or from
an old size, whatever it is shown: a fork it refused before could then reach a quorum. So at
start-up the node asks the gateway's log for the newest checkpoint carrying this witness's own
cosignature (verified under its own key: the gateway cannot forge one) and refuses to start when

- the state file is missing but the log holds a cosignature of this witness, or
- the state is older than the newest checkpoint the log shows this witness cosigned, or
- the state file is missing and the log cannot be asked (the check cannot be made),

unless the operator passes the explicit re-initialise option, which adopts that newest
cosigned checkpoint as the floor (or starts empty on a log that holds none).

A state file that exists while the gateway is unreachable may have been restored from an older
copy, and the check cannot be made yet. The node then starts (so nodes and gateway need no start
order) but its witness is **held**: it cosigns nothing, and queries that need its cosignature are
refused, until :func:`check_when_reachable` has compared the state with the log. A state found
older then stays held, with an error in the log, until the operator restores it or restarts with
the re-initialise option.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from comity.audit.cosignature import CosignatureVerifier
from comity.audit.errors import AuditError
from comity.audit.quorum import Quorum
from comity.audit.witness import Witness
from comity.core.errors import ConfigError, NotFound, Unavailable
from comity.core.federation import Federation
from comity.core.tasks import cancel_and_wait
from comity.nodes.logsync import GatewayLog

__all__ = ["HELD", "WitnessStateError", "check_when_reachable", "check_witness_state", "hold_until_checked"]

_log = logging.getLogger("comity.node.witness")

REINIT_HINT = (
    "restore the witness state file from its backup, or, if it is lost for good, start once with "
    "--reinitialise-witness: the witness then continues from the newest checkpoint it provably "
    "cosigned"
)


class WitnessStateError(ConfigError):
    """The witness state is missing or older than the log says this witness cosigned."""


@dataclass(frozen=True)
class _Cosigned:
    size: int
    note: bytes


async def check_witness_state(
    witness: Witness,
    *,
    existed: bool,
    state: Path,
    federation: Federation,
    node_id: str,
    reinitialise: bool = False,
    wait_seconds: float = 20.0,
) -> bool:
    """Refuse (raise :class:`WitnessStateError`) unless the witness state is at least what the log shows.

    Returns False when the state exists but the log could not be asked: the caller holds the
    witness and runs :func:`check_when_reachable`.
    """
    # In a thread: the gateway may be served by this very event loop (the demo, tests).
    cosigned = await asyncio.to_thread(_newest_cosigned, federation, node_id, witness, wait_seconds)
    latest = witness.latest().size
    if reinitialise:
        if cosigned is not None and cosigned.size > latest:
            witness.adopt(cosigned.note, earlier_keys=_own_keys(federation, node_id))
        _log.warning(
            "witness state %s re-initialised by the operator: continuing from tree size %d",
            state,
            witness.latest().size,
        )
        return True
    if cosigned is None and not existed:
        raise WitnessStateError(
            f"the witness state file {state} is missing and the gateway's log cannot be asked whether "
            "this witness cosigned before",
            hint="start the gateway first, or " + REINIT_HINT,
        )
    if cosigned is None:
        _log.warning(
            "could not compare the witness state %s with the gateway's log: the witness cosigns nothing "
            "until it has",
            state,
        )
        return False
    _compare(cosigned, latest, existed=existed, state=state)
    return True


def _compare(cosigned: _Cosigned, latest: int, *, existed: bool, state: Path) -> None:
    if cosigned.size > latest or (not existed and cosigned.size > 0):
        where = "is missing" if not existed else f"is at tree size {latest}"
        raise WitnessStateError(
            f"the witness state file {state} {where}, but the log shows this witness cosigned tree "
            f"size {cosigned.size}: it would cosign again what it may have refused before",
            hint=REINIT_HINT,
        )


HELD = (
    "this witness has not yet compared its state with the gateway's log (the gateway was unreachable "
    "when the node started): it cosigns nothing until it has"
)


async def check_when_reachable(
    witness: Witness,
    *,
    state: Path,
    federation: Callable[[], Federation],
    node_id: str,
    retry_seconds: float = 2.0,
) -> None:
    """Compare a held witness's state with the log once the gateway answers; release it if it holds up.

    Each try asks the gateway endpoints of the version ``federation()`` returns then, so a
    version trusted meanwhile that lists another gateway replica is asked from the next try.
    Runs until the comparison is made (cancel it to stop). A state older than the log shows
    stays held and is logged as an error naming the fix.
    """
    while True:
        cosigned = await asyncio.to_thread(_newest_cosigned, federation(), node_id, witness, retry_seconds)
        if cosigned is not None:
            break
        await asyncio.sleep(retry_seconds)
    try:
        _compare(cosigned, witness.latest().size, existed=True, state=state)
    except WitnessStateError as exc:
        reason = f"{exc.message}; {exc.hint}"
        witness.hold(reason)
        _log.error("witness state refused: %s", reason)
        return
    witness.release()
    _log.info("witness state %s compared with the gateway's log: cosigning", state)


def hold_until_checked(
    witness: Witness, *, state: Path, federation: Callable[[], Federation], node_id: str
) -> Callable[[], Awaitable[None]]:
    """Hold the witness and compare in the background (:func:`check_when_reachable`), under the
    version ``federation()`` returns at each try; returns its stopper."""
    witness.hold(HELD)
    task = asyncio.create_task(
        check_when_reachable(witness, state=state, federation=federation, node_id=node_id),
        name="witness-state-check",
    )

    async def stop() -> None:
        await cancel_and_wait(task)

    return stop


def _newest_cosigned(
    federation: Federation, node_id: str, witness: Witness, wait_seconds: float
) -> _Cosigned | None:
    """The newest checkpoint the log shows with this witness's own cosignature; None if unreachable.

    A log that holds no cosignature of this witness answers with size 0.
    """
    log = GatewayLog(federation, timeout=wait_seconds)
    try:
        response = log.cosigned_by(node_id)
    except NotFound:
        return _Cosigned(0, b"")
    except Unavailable:
        return None
    finally:
        log.close()
    note = response.checkpoint.signed_note + b"".join(
        (c if c.endswith("\n") else c + "\n").encode() for c in response.cosignatures
    )
    # Under this witness's whole key history: the newest cosignature may be by a key it has
    # since rotated away from, and it still counts as this witness's word.
    quorum = Quorum.of_federation(federation)
    try:
        signed = witness.open_log(note)
        own = [c for c in signed.cosignatures if c.name == witness.verifier.name]
        verified = [quorum.verify(signed.text, c) for c in own]
    except AuditError as exc:
        _log.warning("the log's checkpoint cosigned by this witness does not verify: %s", exc.message)
        return None
    if node_id not in verified:
        return None  # not this witness's: no evidence either way
    return _Cosigned(signed.checkpoint.size, note)


def _own_keys(federation: Federation, node_id: str) -> list[CosignatureVerifier]:
    identity = federation.witness_identity(node_id)
    return [CosignatureVerifier(identity.name, k.public_key) for k in identity.keys.all()]
