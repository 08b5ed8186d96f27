"""Proofs near the head come from memory, and are the same bytes the database would give."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit._recent import RecentTree
from comity.audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from comity.audit.cosignature import CosignatureSigner
from comity.audit.log import TransparencyLog
from comity.audit.note import Ed25519Signer
from comity.audit.proof import consistency_proof, inclusion_proof
from comity.audit.rfc6962 import hash_leaf
from comity.audit.store import Batch, LogStore, PendingEntry
from comity.audit.tree import CompactRange, MemoryTree

SIGNER = Ed25519Signer("comity.example/log", Ed25519PrivateKey.generate())
WITNESS = CosignatureSigner("ca.rcmp-node", Ed25519PrivateKey.generate())


def _sign(size: int, root: bytes) -> bytes:
    return sign_checkpoint(Checkpoint(SIGNER.name, size, root), SIGNER)


def test_every_answer_matches_the_reference_across_window_restarts() -> None:
    recent, compact, tree = RecentTree(limit=20), CompactRange(), MemoryTree()
    starts = []
    for batch in [1, 3, 1, 6, 2, 9, 1, 4, 7, 5]:
        before, border, created = compact.size, compact.nodes(), []
        for n in range(batch):
            leaf = hash_leaf(f"{before + n}".encode())
            created += compact.append(leaf)
            tree.append(leaf)
        recent.committed(before, border, created, compact.size)
        starts.append(recent._window.start if recent._window else -1)
        assert recent.head == compact.size
        for size in range(compact.size + 1):
            for index in range(size):
                got = recent.inclusion_proof(index, size)
                assert got is None or got == inclusion_proof(index, size, tree)
                if index >= starts[-1]:
                    assert got is not None  # every node of a recent entry's proof is held
            for first in range(size + 1):
                got = recent.consistency_proof(first, size)
                assert got is None or got == consistency_proof(first, size, tree)
                if first >= starts[-1]:
                    assert got is not None
    assert len(set(starts)) > 2  # the limit made the window start again more than once
    assert recent.inclusion_proof(0, compact.size + 1) is None  # beyond what was committed


def test_a_gap_from_another_writer_restarts_the_window() -> None:
    recent = RecentTree()
    compact = CompactRange()
    recent.committed(0, [], compact.append(hash_leaf(b"a")), 1)
    compact.append(hash_leaf(b"b"))  # appended by someone else: never reported here
    border = compact.nodes()
    created = compact.append(hash_leaf(b"c"))
    recent.committed(2, border, created, 3)
    tree = MemoryTree(hash_leaf(e) for e in (b"a", b"b", b"c"))
    assert recent.inclusion_proof(0, 3) is None  # leaf 0's proof needs leaf 1, never seen
    assert recent.inclusion_proof(2, 3) == inclusion_proof(2, 3, tree)
    assert recent.consistency_proof(2, 3) == consistency_proof(2, 3, tree)


def test_the_store_answers_recent_proofs_as_its_database_does(log_url: tuple[str, str]) -> None:
    url, prefix = log_url
    one, two = LogStore.open(url, table_prefix=prefix), LogStore.open(url, table_prefix=prefix)
    try:
        written = 0
        # Two writers on one database: each must notice the other's appends.
        for store, count in [(one, 3), (one, 2), (two, 4), (one, 1), (one, 5), (two, 2), (two, 1)]:
            store.append_batch([PendingEntry(f"e{written + i}".encode()) for i in range(count)], _sign)
            written += count
            for size in range(1, written + 1):
                for index in range(size):
                    got = store.recent_inclusion_proof(index, size)
                    assert got is None or got == store.inclusion_proof(index, size)
                for first in range(size + 1):
                    got = store.recent_consistency_proof(first, size)
                    assert got is None or got == store.consistency_proof(first, size)
            assert store.recent_inclusion_proof(written - 1, written) is not None
    finally:
        one.close()
        two.close()


async def test_a_cosignature_joins_the_next_batch_and_checkpoints_come_from_memory(
    log_url: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, prefix = log_url
    log = await TransparencyLog.open(
        url, origin=SIGNER.name, key=SIGNER.private_key, table_prefix=prefix,
        witnesses=[WITNESS.verifier], batch_interval=0.01,
    )  # fmt: skip
    try:
        first = await log.append(b"decision")
        assert log.newest_signed() == (1, first.checkpoint)
        assert await log.checkpoint(1) == log.store.checkpoint(1) == first.checkpoint
        line = WITNESS.cosign(open_checkpoint(first.checkpoint, log.verifier).text, timestamp=1)
        batches: list[int] = []
        append_batch = log.store.append_batch

        def counted(*args: Any) -> Batch:
            batches.append(len(args[0]))
            return append_batch(*args)

        monkeypatch.setattr(log.store, "append_batch", counted)
        _, second = await asyncio.gather(log.add_cosignature(1, line), log.append(b"disclosure"))
        assert batches == [1]  # one transaction for the entry and the cosignature
        assert await log.cosignatures(1) == [line.line()]
        assert log.newest_signed() == (2, second.checkpoint)
        assert await log.consistency_proof(1, 2) == log.store.consistency_proof(1, 2)
        assert await log.inclusion_proof(0, 2) == log.store.inclusion_proof(0, 2)
    finally:
        await log.close()
