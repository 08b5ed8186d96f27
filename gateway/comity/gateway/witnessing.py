"""Witnessing that does not depend on queries: the gateway's loop over every witness (C2SP tlog-witness).

    every interval, or as soon as entries wait → ask every witness to cosign the newest
    checkpoint → store the cosignatures it returns (verified by the log) → quorum? →
    compare what each witness last cosigned with the log → health, metrics, alerts

A checkpoint counts only with a quorum of cosignatures under the federation's witness policy.
When entries have waited longer than ``max_delay`` without a quorum checkpoint covering them,
the loop alerts, as a suspected fork (a split view stalls the quorum; so does a witness that is
down): an error log line, the ``comity.witness.quorum.overdue`` gauge at 1, and the health
service :data:`HEALTH_SERVICE` NOT_SERVING. When a witness's latest cosigned checkpoint (signed
by the log, cosigned by the witness: the gateway cannot forge it) contradicts the log, that is a
proven fork: logged, counted in ``comity.witness.forks``, and kept in :attr:`status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from grpc_health.v1 import health, health_pb2
from opentelemetry import metrics

from comity.audit.checkpoint import Checkpoint
from comity.audit.errors import AuditError, EntryNotFound, InvalidProof
from comity.audit.proof import verify_consistency
from comity.audit.quorum import Quorum, note_cosignatures
from comity.core.errors import ComityError
from comity.core.federation import Federation
from comity.core.telemetry import INSTRUMENTATION
from comity.core.tls_reload import GatewayClientTls
from comity.gateway.independent_witnesses import IndependentWitnesses, Prepared
from comity.gateway.ledger import Ledger
from comity.gateway.routing import NodeRouter
from comity.gateway.witness_client import ForkRefused, WitnessAt, WitnessClient

__all__ = [
    "HEALTH_SERVICE",
    "QuorumRule",
    "WitnessingLoop",
    "WitnessingStatus",
    "node_witnesses",
    "witnessing_for",
]

#: The health service that says whether the log's end is quorum-witnessed within the bound.
HEALTH_SERVICE = "comity.witness.quorum"

_log = logging.getLogger("comity.gateway.witnessing")


class QuorumRule(Protocol):
    """The witness policy's decision (``comity.core.witnesspolicy.WitnessPolicy``)."""

    def is_quorum(self, witness_ids: Iterable[str]) -> bool:
        """Whether these witnesses' cosignatures form a quorum."""
        ...

    def missing(self, witness_ids: Iterable[str]) -> dict[str, int]:
        """Group name → cosignatures still needed."""
        ...


@dataclass
class WitnessingStatus:
    """What the loop knows: the log's end, the newest quorum checkpoint, alerts."""

    log_size: int = 0
    quorum_size: int | None = None
    pending_since: float | None = None  # loop clock: when entries after the quorum checkpoint were first seen
    overdue: bool = False
    missing: dict[str, int] = field(default_factory=dict)
    forks: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)

    def detail(self) -> str:
        """One line for logs and health: what is witnessed, what waits, what is wrong."""
        quorum = "none yet" if self.quorum_size is None else str(self.quorum_size)
        text = f"log size {self.log_size}, newest quorum checkpoint {quorum}"
        if self.missing:
            text += "; quorum pending: " + ", ".join(
                f"{g} needs {n}" for g, n in sorted(self.missing.items())
            )
        if self.unreachable:
            text += "; unreachable: " + ", ".join(sorted(self.unreachable))
        if self.forks:
            text += "; PROVEN FORK: " + " | ".join(self.forks)
        return text


class _Metrics:
    def __init__(self) -> None:
        meter = metrics.get_meter(INSTRUMENTATION)
        self.quorum_size = meter.create_gauge(
            "comity.witness.quorum.size", unit="{entry}", description="Size of the newest quorum checkpoint"
        )
        self.pending = meter.create_gauge(
            "comity.witness.quorum.pending",
            unit="{entry}",
            description="Entries after the newest quorum checkpoint",
        )
        self.overdue = meter.create_gauge(
            "comity.witness.quorum.overdue",
            description="1 while entries wait past max_delay (suspected fork)",
        )
        self.forks = meter.create_counter(
            "comity.witness.forks",
            unit="{fork}",
            description="Proven forks: a witness cosigned another history",
        )


@dataclass(frozen=True)
class _Witnessed:
    """Who the loop asks and how it judges, replaced whole when the federation file changes."""

    witnesses: tuple[WitnessClient, ...]
    quorum: Quorum
    ids: dict[str, str]  # cosignature name → witness id
    max_delay: float

    @classmethod
    def of(cls, witnesses: Iterable[WitnessClient], quorum: Quorum, max_delay: float) -> _Witnessed:
        return cls(tuple(witnesses), quorum, {w.name: w.id for w in quorum.witnesses}, max_delay)


class WitnessingLoop:
    """Asks every witness to cosign the newest checkpoint, on a timer and whenever entries wait."""

    def __init__(
        self,
        ledger: Ledger,
        witnesses: Sequence[WitnessClient],
        *,
        quorum: Quorum,
        interval: float,
        max_delay: float,
        poll: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        independent: IndependentWitnesses | None = None,
        leads: Callable[[], bool] = lambda: True,
    ) -> None:
        self._ledger = ledger
        # Over one database, only the leading replica asks the witnesses (comity.gateway.leadership);
        # the others still judge the quorum from the cosignatures the leader stores.
        self._leads = leads
        self._independent = independent  # the loop's own channels (independent witnesses'), closed at stop
        # Cosignatures are checked under each witness's key history (the key it held when it
        # cosigned); the federation file's witnesses, keys and policy follow it (use_federation).
        self._view = _Witnessed.of(witnesses, quorum, max_delay)
        self._interval = interval
        self._poll = min(poll, interval)
        self._clock = clock
        self._status = WitnessingStatus()
        self._health: health.aio.HealthServicer | None = None
        self._metrics = _Metrics()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._alerted = False
        self._forks: list[str] = []

    @property
    def status(self) -> WitnessingStatus:
        """The latest round's findings."""
        return self._status

    @property
    def independent(self) -> IndependentWitnesses | None:
        """The channels to the independent witnesses, when the loop has its own."""
        return self._independent

    def prepare(self, federation: Federation) -> Prepared | None:
        """What :meth:`use_federation` needs of ``federation`` that can fail or read files: the
        credentials of the independent witnesses it adds (raises when one does not match its pins)."""
        return None if self._independent is None else self._independent.prepare(federation)

    def use_federation(
        self, federation: Federation, router: NodeRouter, prepared: Prepared | None = None
    ) -> None:
        """Ask and judge under a newly trusted federation file from the next round on: its witness
        keys, policy and quorum bound, every node's witness that ``router`` reaches, and the
        independent witnesses ``prepared`` (from :meth:`prepare`) lists: channels are opened for
        the ones it adds and closed for the ones it removes.
        """
        quorum = Quorum.of_federation(federation)
        if self._independent is not None and prepared is not None:
            independent = self._independent.use(prepared)
        else:
            listed = {w.id for w in federation.witness_identities() if w.country is None}
            independent = [w for w in self._view.witnesses if w.witness_id in listed]
        asked = [*node_witnesses(federation, router), *independent]
        self._view = _Witnessed.of(asked, quorum, quorum.max_delay.total_seconds())

    def start(self, health_servicer: health.aio.HealthServicer | None = None) -> None:
        """Run the loop in the background (the server's event loop)."""
        self._health = health_servicer
        self._task = asyncio.create_task(self._run(), name="witnessing")

    async def stop(self) -> None:
        """One last round (so the log's end is witnessed when the gateway stops), then stop."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
            self._task = None
        if self._independent is not None:
            await self._independent.close()

    async def _run(self) -> None:
        last = -self._interval
        witnessed = -1
        while True:
            size, _ = self._ledger.log.newest_signed()
            due = self._clock() - last >= self._interval
            # A standby asks no witness: it only judges the quorum from what the leader stores,
            # which is worth reading once an interval, not after every batch of its own.
            moved = size != witnessed and self._leads()
            if due or moved or self._stopping.is_set():
                last = self._clock()
                try:
                    witnessed = (await self.round()).log_size
                except ComityError as exc:  # the log or a witness is down: said in words, no traceback
                    _log.error("witnessing round failed: %s", exc.message)
                except Exception:  # never let one bad round end witnessing
                    _log.exception("witnessing round failed")
            if self._stopping.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._poll)

    # ------------------------------------------------------------------ one round

    async def round(self) -> WitnessingStatus:
        """Ask every witness once, store what they cosign, judge the quorum and compare their views."""
        view = self._view  # one version of the federation file for the whole round
        note = await self._ledger.log.latest_checkpoint()
        head = self._ledger.log.open_own(note).checkpoint
        status = WitnessingStatus(log_size=head.size)
        if self._leads():
            results = await asyncio.gather(*(self._ask(w, note, head.size) for w in view.witnesses))
            status.unreachable = [
                w.witness_id for w, ok in zip(view.witnesses, results, strict=True) if not ok
            ]
            await asyncio.gather(*(self._compare(view, w, head) for w in view.witnesses))
        else:
            status.unreachable = list(self._status.unreachable)
        status.forks = list(self._forks)
        await self._judge(view, status)
        self._status = status
        await self._publish(status)
        return status

    async def _ask(self, witness: WitnessClient, note: bytes, size: int) -> bool:
        try:
            lines = await witness.add_checkpoint(note, size, self._ledger.log.consistency_proof)
        except WitnessAt as exc:
            # Another replica moved it further; what it cosigned there is compared below.
            _log.info("witness %s is at size %d, past %d", witness.witness_id, exc.size, size)
            self._ledger.note_witnessed(witness.witness_id, exc.size)
            return True
        except ForkRefused as exc:
            self._fork(f"witness {witness.witness_id} refused size {size}: {exc.message}")
            return False
        except ComityError as exc:
            _log.warning("witness %s did not cosign size %d: %s", witness.witness_id, size, exc.message)
            return False
        # A node's witness is now at this size: the next query forwarded to it is proved from here.
        self._ledger.note_witnessed(witness.witness_id, size)
        for line in lines:
            try:
                await self._ledger.log.add_cosignature(size, line)
            except ComityError as exc:
                _log.warning("cosignature from %s refused: %s", witness.witness_id, exc.message)
                return False
        return True

    async def _judge(self, view: _Witnessed, status: WitnessingStatus) -> None:
        """The newest quorum checkpoint, and whether entries have waited too long for one."""
        store = self._ledger.log.store
        cosigned = await asyncio.to_thread(store.cosigners, below=status.log_size + 1)
        newest_ids: set[str] = set()
        for i, (size, names) in enumerate(cosigned):
            ids = {view.ids[n] for n in names if n in view.ids}
            if i == 0 and size == status.log_size:
                newest_ids = ids
            if view.quorum.is_quorum(ids):
                status.quorum_size = size
                break
        if status.quorum_size == status.log_size:
            return
        status.missing = view.quorum.missing(newest_ids)
        previous = self._status
        since = previous.pending_since if previous.quorum_size == status.quorum_size else None
        status.pending_since = self._clock() if since is None else since
        status.overdue = self._clock() - status.pending_since > view.max_delay

    async def _compare(self, view: _Witnessed, witness: WitnessClient, head: Checkpoint) -> None:
        """Gossip: the witness's latest cosigned checkpoint must be one this log's history contains."""
        try:
            note = await witness.latest_cosigned()
        except ComityError:
            return
        if note is None:
            return
        try:
            seen = self._ledger.log.open_own(note)
            lines = note_cosignatures(note, seen.checkpoint.origin)
            by = [view.quorum.verify(seen.text, c) for c in lines if c.name in view.ids]
        except AuditError as exc:
            _log.warning(
                "witness %s relayed a checkpoint that does not verify: %s", witness.witness_id, exc.message
            )
            return
        if witness.witness_id not in by:
            return  # not evidence: it carries no cosignature of this witness
        problem = await self._contradiction(seen.checkpoint, head)
        if problem:
            self._fork(f"witness {witness.witness_id} cosigned {problem}")

    async def _contradiction(self, seen: Checkpoint, head: Checkpoint) -> str:
        log = self._ledger.log
        if seen.size > head.size:  # the log may have grown since the round began: look again
            head = log.open_own(await log.latest_checkpoint()).checkpoint
        if seen.size > head.size:
            return f"tree size {seen.size}, larger than this log's {head.size}"
        try:
            ours = log.open_own(await log.checkpoint(seen.size)).checkpoint
            if ours.root_hash != seen.root_hash:
                return f"another tree of size {seen.size} than this log's"
            return ""
        except EntryNotFound:
            pass  # no checkpoint of that size here: prove it from the entries
        try:
            proof = await log.consistency_proof(seen.size, head.size)
            verify_consistency(seen.size, head.size, proof, seen.root_hash, head.root_hash)
        except InvalidProof:
            return f"a tree of size {seen.size} that this log of size {head.size} does not extend"
        return ""

    def _fork(self, what: str) -> None:
        if what in self._forks:
            return
        self._forks.append(what)
        self._metrics.forks.add(1)
        _log.error("PROVEN FORK of the transparency log: %s", what)

    async def _publish(self, status: WitnessingStatus) -> None:
        m = self._metrics
        if status.quorum_size is not None:
            m.quorum_size.set(status.quorum_size)
        m.pending.set(status.log_size - (status.quorum_size or 0))
        m.overdue.set(1 if status.overdue else 0)
        if status.overdue and not self._alerted:
            _log.error("no witness quorum within the bound, suspected fork: %s", status.detail())
        elif self._alerted and not status.overdue:
            _log.info("witness quorum restored: %s", status.detail())
        self._alerted = status.overdue
        if self._health is not None:
            healthy = not status.overdue and not status.forks
            serving = (
                health_pb2.HealthCheckResponse.SERVING
                if healthy
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            await self._health.set(HEALTH_SERVICE, serving)

    def quorum_ids(self, names: Iterable[str]) -> set[str]:
        """The witness ids behind cosignature names (unknown names dropped)."""
        ids = self._view.ids
        return {ids[n] for n in names if n in ids}


def witnessing_for(
    federation: Federation,
    ledger: Ledger,
    router: NodeRouter,
    *,
    interval: float,
    client: GatewayClientTls | None = None,
    leads: Callable[[], bool] = lambda: True,
) -> WitnessingLoop:
    """The loop over every witness in ``federation``: each node's, through ``router``'s channels,
    and each independent one (``[[witnesses]]``), over a channel of its own showing the gateway's
    client certificate in use (``client``) and trusting exactly its pinned one
    (:mod:`comity.gateway.independent_witnesses`; none is asked without ``client``)."""
    quorum = Quorum.of_federation(federation)
    independent = IndependentWitnesses(client=client, deadline=_deadline(router))
    witnesses = [*node_witnesses(federation, router), *independent.use(independent.prepare(federation))]
    return WitnessingLoop(
        ledger,
        witnesses,
        quorum=quorum,
        interval=interval,
        max_delay=quorum.max_delay.total_seconds(),
        independent=independent,
        leads=leads,
    )


def _deadline(router: NodeRouter) -> float:
    return min(router.deadline, 3.0)


def node_witnesses(federation: Federation, router: NodeRouter) -> list[WitnessClient]:
    """A client of every node's witness in ``federation`` that ``router`` reaches, on its channel."""
    deadline = _deadline(router)
    reached = [n for n in federation.nodes() if router.knows(n.id)]
    return [WitnessClient(n.id, router.witness_stub(n.id), deadline) for n in reached]
