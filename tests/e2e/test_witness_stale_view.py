"""A gateway whose view of a node's witness is stale answers at once, or with one more round trip.

Another gateway process (or a query that overtook this one) may have moved the node's witness
since this process last heard of it. A first forward carries consistency proofs from the newest
checkpoints below its own, so a witness left at one of them takes the query at once. A witness
elsewhere refuses the forwarded query with ``WITNESS_AT_SIZE`` and its real size, before
checking any signature; the gateway forwards again with the consistency proof from there. On
the last attempt the node fetches the proof from the log instead of refusing. The federation
runs on loopback (real gRPC, TLS, signatures, SQLite); the witnessing loop is stopped so only
these queries move the witness.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_asyncio

from comity.core.errors import ComityError
from comity.gateway import ledger as ledger_module
from comity.gateway import pipeline
from comity.gateway.witness_client import WitnessAt
from comity.sdk.demo.run import RunningFederation, Scenario, run_scenario, scenarios
from comity.sdk.profile import load_profile
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")

NODE = "us-node"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def quiet(running: RunningFederation) -> AsyncIterator[RunningFederation]:
    """The federation with its witnessing loop stopped: only queries move the witnesses."""
    loop = running.gateway.witnessing
    assert loop is not None
    await loop.stop()
    yield running


def _scenario(running: RunningFederation) -> Scenario:
    return next(s for s in scenarios(running.federation) if s.node == NODE and s.expect_allowed)


class _Spy:
    """What the gateway's calls to the node returned, and how often the log was asked for a proof."""

    def __init__(self, running: RunningFederation, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[ComityError | None] = []
        self.forwarded: list[pb.ExecuteRequest] = []
        self.fetched: list[tuple[int, int]] = []
        router, ledger = running.gateway.router, running.gateway.ledger
        execute, proof = router.execute, ledger.consistency_proof

        async def spied_execute(node: str, request: pb.ExecuteRequest, **kw: object) -> pb.QueryResult:
            self.forwarded.append(request)
            try:
                result = await execute(node, request, **kw)  # type: ignore[arg-type]
            except ComityError as err:
                self.calls.append(err)
                raise
            self.calls.append(None)
            return result

        async def spied_proof(first: int, second: int) -> Sequence[bytes]:
            self.fetched.append((first, second))
            return await proof(first, second)

        monkeypatch.setattr(router, "execute", spied_execute)
        # The AuditLog service's GetConsistencyProof (what a node fetches) goes through this.
        monkeypatch.setattr(ledger, "consistency_proof", spied_proof)


async def _query(running: RunningFederation) -> None:
    s = _scenario(running)
    profile = load_profile(running.federation.profiles[s.agency])
    async with profile.async_client() as client:
        outcome = await run_scenario(client, running.federation, s)
    assert outcome.result is not None, outcome.error and outcome.error.diagnostics()


async def _stale_view(running: RunningFederation) -> int:
    """Answer queries (the view is then exact), make it stale, and return the witness's real size."""
    await _query(running)
    await _query(running)
    router, ledger = running.gateway.router, running.gateway.ledger
    real = await router.witness_state(NODE)
    assert real > 1
    ledger.set_witnessed_size(NODE, 1)
    return real


@pytest.fixture
def no_recent_proofs(monkeypatch: pytest.MonkeyPatch) -> None:
    """First forwards carry only the proof from this process's view (a witness elsewhere refuses)."""
    monkeypatch.setattr(ledger_module, "_RECENT_PROOFS", 0)


async def test_a_stale_view_is_answered_at_once_by_a_proof_from_a_recent_checkpoint(
    quiet: RunningFederation, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = await _stale_view(quiet)
    spy = _Spy(quiet, monkeypatch)
    await _query(quiet)
    assert spy.calls == [None]  # no WITNESS_AT_SIZE round trip
    (forwarded,) = spy.forwarded
    size = forwarded.decision_entry.inclusion.tree_size
    assert forwarded.consistency.first_size == 1  # from the (wrong) view ...
    firsts = [p.first_size for p in forwarded.more_consistency]
    assert real in firsts  # ... and from the newest checkpoints, where the witness really is
    assert all(p.second_size == size and 0 < p.first_size < size for p in forwarded.more_consistency)
    assert firsts == sorted(firsts, reverse=True) and len(firsts) <= ledger_module._RECENT_PROOFS
    assert spy.fetched == []


@pytest.mark.usefixtures("no_recent_proofs")
async def test_a_stale_view_costs_one_refusal_with_the_witness_size_and_no_fetch(
    quiet: RunningFederation, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = await _stale_view(quiet)
    spy = _Spy(quiet, monkeypatch)
    await _query(quiet)
    assert len(spy.calls) == 2, spy.calls
    refused, answered = spy.calls
    assert isinstance(refused, WitnessAt) and refused.size == real
    assert [v.check for v in refused.violations] == ["WITNESS_AT_SIZE"]
    assert f"this node's witness is at tree size {real}" in refused.message
    assert answered is None
    first, second = spy.forwarded
    assert first.report_witness_size and second.report_witness_size
    assert (first.consistency.first_size, second.consistency.first_size) == (1, real)
    # Forwarded again against the newest checkpoint, with proofs from the checkpoints after the
    # witness's size too (it may have moved on to one of them meanwhile).
    size = second.decision_entry.inclusion.tree_size
    assert all(p.second_size == size and real < p.first_size < size for p in second.more_consistency)
    assert not first.more_consistency
    # The node took the gateway's second proof: it asked the log for none.
    assert spy.fetched == []
    assert quiet.gateway.ledger.witnessed_size(NODE) == second.decision_entry.inclusion.tree_size


@pytest.mark.usefixtures("no_recent_proofs")
async def test_on_the_last_attempt_the_node_fetches_the_proof_from_the_log(
    quiet: RunningFederation, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = await _stale_view(quiet)
    monkeypatch.setattr(pipeline, "_WITNESS_ATTEMPTS", 1)
    spy = _Spy(quiet, monkeypatch)
    await _query(quiet)
    assert spy.calls == [None]
    assert not spy.forwarded[0].report_witness_size
    size = spy.forwarded[0].decision_entry.inclusion.tree_size
    assert spy.fetched == [(real, size)]


@pytest.mark.usefixtures("no_recent_proofs")
async def test_a_witness_ahead_of_the_checkpoint_is_caught_up_from_its_size(
    quiet: RunningFederation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view larger than the log's newest checkpoint this process signed: the checkpoint is read
    from the log again, and a view above the witness's real size is corrected by the refusal."""
    await _query(quiet)
    router, ledger = quiet.gateway.router, quiet.gateway.ledger
    real = await router.witness_state(NODE)
    newest, _ = ledger.log.newest_signed()
    ledger.set_witnessed_size(NODE, newest + 5)  # a size this log never had: a wrong view
    spy = _Spy(quiet, monkeypatch)
    await _query(quiet)
    refused, answered = spy.calls
    assert isinstance(refused, WitnessAt) and refused.size == real
    assert answered is None and spy.fetched == []


async def test_a_witnessing_round_tells_the_forwarding_path_where_the_witness_is(
    quiet: RunningFederation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop moves the witness too: the next query is proved from where the round left it."""
    await _query(quiet)
    ledger, loop = quiet.gateway.ledger, quiet.gateway.witnessing
    assert loop is not None
    ledger.set_witnessed_size(NODE, 1)
    await ledger.record(b'{"kind": "test", "n": 1}')
    status = await loop.round()
    assert NODE not in status.unreachable
    assert ledger.witnessed_size(NODE) == status.log_size
    spy = _Spy(quiet, monkeypatch)
    await _query(quiet)
    assert spy.calls == [None]  # no WITNESS_AT_SIZE: the view was right
    assert spy.forwarded[0].consistency.first_size == status.log_size


async def test_a_query_overtaken_by_a_newer_one_is_taken_on_the_proof_the_newer_one_brought(
    quiet: RunningFederation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The older query reaches the node after the newer one moved the witness past its checkpoint:
    the proof between the two came with the newer query, the node kept it, and no round trip."""
    await _query(quiet)
    router = quiet.gateway.router
    execute = router.execute
    forwarded: list[pb.ExecuteRequest] = []
    outcomes: list[ComityError | None] = []
    overtaken, held = asyncio.Event(), asyncio.Event()

    async def held_execute(node: str, request: pb.ExecuteRequest, **kw: object) -> pb.QueryResult:
        forwarded.append(request)
        if len(forwarded) == 1:
            held.set()
            await overtaken.wait()  # the first query waits until the second one was answered
        try:
            result = await execute(node, request, **kw)  # type: ignore[arg-type]
        except ComityError as err:
            outcomes.append(err)
            raise
        outcomes.append(None)
        if len(forwarded) == 2:
            overtaken.set()
        return result

    monkeypatch.setattr(router, "execute", held_execute)
    first = asyncio.create_task(_query(quiet))
    await held.wait()
    await _query(quiet)
    await first
    older, newer = (r.decision_entry.inclusion.tree_size for r in forwarded)
    assert older < newer
    brought = [forwarded[1].consistency, *forwarded[1].more_consistency]
    assert older in [p.first_size for p in brought]
    assert outcomes == [None, None]  # the newer answered first, the older without WITNESS_AT_SIZE
    assert await router.witness_state(NODE) == newer
