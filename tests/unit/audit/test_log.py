"""The transparency log on SQLite and PostgreSQL: appends, group commit, proofs, cosignatures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit.checkpoint import Checkpoint, open_checkpoint
from comity.audit.commitments import commit_selector
from comity.audit.cosignature import CosignatureSigner
from comity.audit.errors import AuditUnavailable, EntryNotFound, UnverifiedNote
from comity.audit.log import TransparencyLog
from comity.audit.proof import verify_consistency, verify_inclusion
from comity.audit.rfc6962 import EMPTY_ROOT, hash_leaf
from comity.audit.verify import verify_log
from comity.core.errors import ConfigError

ORIGIN = "comity.example/log"
KEY = Ed25519PrivateKey.generate()
WITNESS = CosignatureSigner("ca.rcmp-node", Ed25519PrivateKey.generate())

LogUrl = tuple[str, str]


async def _open(
    log_url: LogUrl, *, batch_interval: float = 0.002, key: Ed25519PrivateKey = KEY
) -> TransparencyLog:
    url, prefix = log_url
    return await TransparencyLog.open(
        url,
        origin=ORIGIN,
        key=key,
        table_prefix=prefix,
        witnesses=[WITNESS.verifier],
        batch_interval=batch_interval,
    )


def _root(note: bytes, log: TransparencyLog) -> Checkpoint:
    return open_checkpoint(note, log.verifier).checkpoint


async def test_new_log_publishes_the_empty_checkpoint(log_url: LogUrl) -> None:
    log = await _open(log_url)
    try:
        checkpoint = _root(await log.latest_checkpoint(), log)
        assert (checkpoint.size, checkpoint.root_hash) == (0, EMPTY_ROOT)
    finally:
        await log.close()


async def test_concurrent_appends_share_one_checkpoint_and_verify(log_url: LogUrl) -> None:
    log = await _open(log_url, batch_interval=0.2)
    try:
        entries = [f"entry {i}".encode() for i in range(20)]
        results = await asyncio.gather(*(log.append(e) for e in entries))
        assert sorted(r.index for r in results) == list(range(20))
        # All twenty were queued before the writer ran: one transaction, one checkpoint.
        assert {r.tree_size for r in results} == {20}
        assert log.store.checkpoint_sizes() == [0, 20]
        root = _root(results[0].checkpoint, log).root_hash
        for entry, result in zip(entries, results, strict=True):
            assert result.leaf_hash == hash_leaf(entry)
            verify_inclusion(result.leaf_hash, result.index, 20, result.inclusion, root)
        by_index = {r.index: e for r, e in zip(results, entries, strict=True)}
        assert await log.entries(3, 6) == [by_index[3], by_index[4], by_index[5]]
    finally:
        await log.close()


async def test_sequential_batches_grow_consistently_and_proofs_are_served(log_url: LogUrl) -> None:
    log = await _open(log_url)
    try:
        sizes = []
        for i in range(13):
            sizes.append((await log.append(f"e{i}".encode())).tree_size)
        assert sizes == list(range(1, 14))
        roots = {n: _root(await log.checkpoint(n), log).root_hash for n in (0, 1, 5, 8, 13)}
        for first, second in [(0, 5), (1, 13), (5, 8), (5, 13), (8, 13), (13, 13)]:
            proof = await log.consistency_proof(first, second)
            verify_consistency(first, second, proof, roots[first], roots[second])
        for index in (0, 4, 12):
            proof = await log.inclusion_proof(index, 8 if index < 8 else 13)
            verify_inclusion(
                hash_leaf(f"e{index}".encode()),
                index,
                8 if index < 8 else 13,
                proof,
                roots[8 if index < 8 else 13],
            )
        index, proof = await log.inclusion_proof_by_leaf_hash(hash_leaf(b"e7"), 13)
        assert index == 7
        verify_inclusion(hash_leaf(b"e7"), 7, 13, proof, roots[13])
        with pytest.raises(EntryNotFound):
            await log.inclusion_proof_by_leaf_hash(hash_leaf(b"never logged"), 13)
        with pytest.raises(EntryNotFound):
            await log.inclusion_proof(3, 14)
        with pytest.raises(EntryNotFound):
            await log.entries(10, 20)
    finally:
        await log.close()


async def test_reopening_continues_the_same_tree(log_url: LogUrl) -> None:
    log = await _open(log_url)
    first = [await log.append(f"a{i}".encode()) for i in range(5)]
    await log.close()
    log = await _open(log_url)
    try:
        later = await log.append(b"after reopen")
        assert later.index == 5
        root = _root(later.checkpoint, log).root_hash
        proof = await log.inclusion_proof(first[2].index, 6)
        verify_inclusion(first[2].leaf_hash, 2, 6, proof, root)
        old_root = _root(first[-1].checkpoint, log).root_hash
        verify_consistency(5, 6, await log.consistency_proof(5, 6), old_root, root)
    finally:
        await log.close()


async def test_two_log_handles_on_one_database_never_fork(log_url: LogUrl) -> None:
    # Two gateway processes behind one database: the sequencer lock serialises them.
    one, two = await _open(log_url), await _open(log_url)
    try:
        results = await asyncio.gather(
            *(log.append(f"{n}-{i}".encode()) for i in range(10) for n, log in (("one", one), ("two", two)))
        )
        assert sorted(r.index for r in results) == list(range(20))
        final = _root(await one.latest_checkpoint(), one)
        assert final.size == 20
        for r in results:
            verify_inclusion(
                r.leaf_hash, r.index, 20, await two.inclusion_proof(r.index, 20), final.root_hash
            )
    finally:
        await one.close()
        await two.close()


async def test_opening_with_another_key_is_refused(log_url: LogUrl) -> None:
    log = await _open(log_url)
    await log.close()
    with pytest.raises(ConfigError, match="not signed by this log key"):
        await _open(log_url, key=Ed25519PrivateKey.generate())


async def test_openings_are_stored_beside_the_entry(log_url: LogUrl) -> None:
    log = await _open(log_url)
    try:
        opening = commit_selector("email", "a@example.org")
        result = await log.append(b'{"commitments":["..."]}', openings=[opening])
        assert await log.openings(result.index) == [opening]
        assert opening.value.encode() not in b"".join(await log.entries(0, 1))
    finally:
        await log.close()


async def test_cosignatures_are_verified_then_stored(log_url: LogUrl) -> None:
    log = await _open(log_url)
    try:
        result = await log.append(b"decision")
        text = open_checkpoint(result.checkpoint, log.verifier).text
        good = WITNESS.cosign(text, timestamp=1_700_000_000)
        await log.add_cosignature(1, good.line())
        assert await log.cosignatures(1) == [good.line()]
        opened = open_checkpoint(await log.cosigned_checkpoint(), log.verifier, witnesses=[WITNESS.verifier])
        assert opened.cosignatures == (good,)
        # A cosignature over another checkpoint, or by an unknown witness, is refused.
        with pytest.raises(UnverifiedNote):
            await log.add_cosignature(0, good)
        stranger = CosignatureSigner("us.fbi-node", Ed25519PrivateKey.generate())
        with pytest.raises(UnverifiedNote, match="not a witness"):
            await log.add_cosignature(1, stranger.cosign(text, timestamp=1))
    finally:
        await log.close()


async def test_a_failing_store_fails_closed_and_the_log_stays_consistent(log_url: LogUrl) -> None:
    log = await _open(log_url)
    try:
        await log.append(b"before")
        # Make the next write fail inside its transaction: the tables vanish from under it.
        broken = log.store.tables.entries.name
        renamed = broken + "_away"
        with log.store._writer.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {broken} RENAME TO {renamed}")
        with pytest.raises(AuditUnavailable):
            await asyncio.gather(log.append(b"lost 1"), log.append(b"lost 2"))
        with log.store._writer.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {renamed} RENAME TO {broken}")
        after = await log.append(b"after")
        assert after.index == 1 and after.tree_size == 2
        assert log.store.checkpoint_sizes() == [0, 1, 2]
        root = _root(after.checkpoint, log).root_hash
        verify_inclusion(after.leaf_hash, 1, 2, after.inclusion, root)
    finally:
        await log.close()


async def test_append_after_close_is_refused(log_url: LogUrl) -> None:
    log = await _open(log_url)
    await log.close()
    with pytest.raises(AuditUnavailable):
        await log.append(b"late")


async def test_the_offline_verifier_accepts_an_honest_log(log_url: LogUrl, tmp_path: Path) -> None:
    log = await _open(log_url)
    try:
        results = await asyncio.gather(*(log.append(f"e{i}".encode()) for i in range(9)))
        text = open_checkpoint(results[-1].checkpoint, log.verifier).text
        await log.add_cosignature(results[-1].tree_size, WITNESS.cosign(text, timestamp=5))
    finally:
        await log.close()
    url, prefix = log_url
    report = verify_log(
        url,
        verifier_key=log.verifier.to_text(),
        witnesses=[WITNESS.verifier],
        state=tmp_path / "seen",
        table_prefix=prefix,
    )
    assert (report.tree_size, report.cosignatures) == (9, 1)
    assert report.root_hash == _root((tmp_path / "seen").read_bytes(), log).root_hash
