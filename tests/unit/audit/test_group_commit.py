"""Adaptive group commit: an append to an idle log commits at once; appends that arrive while a
commit runs go together in the next one. On SQLite and PostgreSQL.

Nothing here measures time. A gate holds the writer's commit in its thread so that the test
decides what arrives while a commit runs, and the writer's waits for company are recorded
(and return at once) instead of being slept through.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit.checkpoint import open_checkpoint
from comity.audit.errors import AuditUnavailable
from comity.audit.log import AppendResult, TransparencyLog
from comity.audit.proof import verify_inclusion
from comity.audit.store import Batch, PendingEntry, SignCheckpoint, StoredCosignature

ORIGIN = "comity.example/log"
KEY = Ed25519PrivateKey.generate()
#: Long enough that a writer waiting it out for real would stall the test run.
AN_HOUR = 3600.0

LogUrl = tuple[str, str]


class _Writer:
    """Records the writer's batches and waits for company; can hold commits until released."""

    def __init__(
        self, log: TransparencyLog, monkeypatch: pytest.MonkeyPatch, *, fail_first: bool = False
    ) -> None:
        self.batches: list[int] = []
        self.waits: list[float] = []
        self._started = threading.Semaphore(0)
        self._go = threading.Event()
        self._go.set()
        self._fail_first = fail_first
        real = log.store.append_batch

        def gated(
            pending: Sequence[PendingEntry],
            sign: SignCheckpoint,
            cosignatures: Sequence[StoredCosignature] = (),
        ) -> Batch:
            self.batches.append(len(pending))
            self._started.release()
            self._go.wait()
            if self._fail_first and len(self.batches) == 1:
                raise AuditUnavailable("the disk is full")
            return real(pending, sign, cosignatures)

        async def recorded(delay: float) -> None:
            self.waits.append(delay)

        monkeypatch.setattr(log.store, "append_batch", gated)
        monkeypatch.setattr(log, "_wait_for_company", recorded)

    def hold(self) -> None:
        self._go.clear()

    def release(self) -> None:
        self._go.set()

    async def commit_started(self) -> None:
        # A safety net against a hung run, not a timing: the commit starts within microseconds.
        assert await asyncio.to_thread(self._started.acquire, True, 60)


async def _open(log_url: LogUrl, *, max_batch: int = 512) -> TransparencyLog:
    url, prefix = log_url
    return await TransparencyLog.open(
        url, origin=ORIGIN, key=KEY, table_prefix=prefix, batch_interval=AN_HOUR, max_batch=max_batch
    )


async def _queued(log: TransparencyLog, count: int) -> None:
    """Let appends just started as tasks reach the log's queue (each queues before its first await)."""
    await asyncio.sleep(0)
    assert len(log._pending) == count


async def _behind_a_commit(
    log: TransparencyLog, writer: _Writer, count: int
) -> tuple[asyncio.Task[AppendResult], list[asyncio.Task[AppendResult]]]:
    """Hold a first append's commit in the writer, then queue ``count`` appends behind it."""
    writer.hold()
    first = asyncio.create_task(log.append(b"first"))
    await writer.commit_started()
    later = [asyncio.create_task(log.append(f"later {i}".encode())) for i in range(count)]
    await _queued(log, count)
    return first, later


def _verify(log: TransparencyLog, result: AppendResult) -> None:
    checkpoint = open_checkpoint(result.checkpoint, log.verifier).checkpoint
    assert checkpoint.size == result.tree_size
    verify_inclusion(result.leaf_hash, result.index, result.tree_size, result.inclusion, checkpoint.root_hash)


async def test_an_append_to_an_idle_log_commits_at_once(
    log_url: LogUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = await _open(log_url)
    writer = _Writer(log, monkeypatch)
    try:
        for i in range(3):
            result = await log.append(f"alone {i}".encode())
            assert (result.index, result.tree_size) == (i, i + 1)
            _verify(log, result)
        # With an hour's batch interval: no entry waited for company that was not coming.
        assert writer.batches == [1, 1, 1]
        assert writer.waits == []
        assert log.store.checkpoint_sizes() == [0, 1, 2, 3]
    finally:
        await log.close()


async def test_appends_during_a_commit_share_the_next_one(
    log_url: LogUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = await _open(log_url)
    writer = _Writer(log, monkeypatch)
    try:
        first, later = await _behind_a_commit(log, writer, 3)
        assert writer.batches == [1]  # the three wait for the running commit, not with it
        writer.release()
        results = [await first] + [await task for task in later]
        assert writer.batches == [1, 3]
        # A small batch formed under load waits for company, up to the interval and no longer.
        assert len(writer.waits) == 1 and 0 < writer.waits[0] <= AN_HOUR
        assert [r.tree_size for r in results] == [1, 4, 4, 4]
        assert sorted(r.index for r in results) == [0, 1, 2, 3]
        for result in results:
            _verify(log, result)
        # Load gone, the log is idle again: the next lone append does not wait.
        alone = await log.append(b"alone")
        assert (alone.index, writer.batches, len(writer.waits)) == (4, [1, 3, 1], 1)
    finally:
        writer.release()
        await log.close()


async def test_a_big_enough_batch_commits_without_waiting(
    log_url: LogUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = await _open(log_url)
    writer = _Writer(log, monkeypatch)
    try:
        first, later = await _behind_a_commit(log, writer, 40)
        writer.release()
        await asyncio.gather(first, *later)
        assert writer.batches == [1, 40]
        assert writer.waits == []
    finally:
        writer.release()
        await log.close()


async def test_max_batch_splits_what_piled_up(log_url: LogUrl, monkeypatch: pytest.MonkeyPatch) -> None:
    log = await _open(log_url, max_batch=3)
    writer = _Writer(log, monkeypatch)
    try:
        first, later = await _behind_a_commit(log, writer, 7)
        writer.release()
        results = await asyncio.gather(first, *later)
        assert writer.batches == [1, 3, 3, 1]
        assert log.store.checkpoint_sizes() == [0, 1, 4, 7, 8]
        assert sorted(r.index for r in results) == list(range(8))
        for result in results:
            _verify(log, result)
    finally:
        writer.release()
        await log.close()


async def test_a_failed_commit_fails_only_its_own_callers(
    log_url: LogUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = await _open(log_url)
    writer = _Writer(log, monkeypatch, fail_first=True)
    try:
        writer.hold()
        doomed = [asyncio.create_task(log.append(f"doomed {i}".encode())) for i in range(2)]
        await writer.commit_started()
        later = [asyncio.create_task(log.append(f"later {i}".encode())) for i in range(2)]
        await _queued(log, 2)
        writer.release()
        for task in doomed:
            with pytest.raises(AuditUnavailable, match="disk is full"):
                await task
        results = [await task for task in later]
        assert writer.batches == [2, 2]
        # Nothing of the failed batch was kept: the entries behind it take its place.
        assert sorted(r.index for r in results) == [0, 1]
        assert log.store.checkpoint_sizes() == [0, 2]
        assert await log.entries(0, 2) == [b"later 0", b"later 1"]
    finally:
        writer.release()
        await log.close()


async def test_close_commits_what_is_pending_without_waiting(
    log_url: LogUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = await _open(log_url)
    writer = _Writer(log, monkeypatch)
    try:
        writer.hold()
        first = asyncio.create_task(log.append(b"first"))
        await writer.commit_started()
        pending = asyncio.create_task(log.append(b"pending"))
        await _queued(log, 1)
        closing = asyncio.create_task(log.close())
        await asyncio.sleep(0)
        writer.release()
        await closing
        assert ((await first).tree_size, (await pending).tree_size) == (1, 2)
        assert writer.batches == [1, 1]
        assert writer.waits == []
    finally:
        writer.release()
        await log.close()
