"""A writer that finds another writer's appends before its batch catches up from their leaf hashes.

Two stores over one database stand for two gateway processes. After the other's appends, a
store still answers proofs between any of the checkpoints either published from memory (the
same bytes the database gives) and knows their sizes; when the other's entries do not give
the root the other signed, it reads the tree's border from the database as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from comity.audit.checkpoint import Checkpoint, sign_checkpoint
from comity.audit.note import Ed25519Signer
from comity.audit.store import LogStore, PendingEntry

SIGNER = Ed25519Signer("comity.example/log", Ed25519PrivateKey.generate())


def _sign(size: int, root: bytes) -> bytes:
    return sign_checkpoint(Checkpoint(SIGNER.name, size, root), SIGNER)


def _append(store: LogStore, *names: str) -> int:
    return store.append_batch([PendingEntry(n.encode()) for n in names], _sign).tree_size


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[LogStore, LogStore]]:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    first = LogStore.open(url)
    second = LogStore.open(url)
    yield first, second
    first.close()
    second.close()


def test_proofs_to_and_from_the_other_writers_checkpoints_come_from_memory(
    two: tuple[LogStore, LogStore],
) -> None:
    a, b = two
    mine = _append(a, "a1", "a2", "a3")
    theirs = [_append(b, "b1"), _append(b, "b2", "b3")]
    newest = _append(a, "a4")
    assert a.recent_sizes() == (mine, *theirs, newest)
    for first in (mine, *theirs):
        proof = a.recent_consistency_proof(first, newest)
        assert proof is not None
        assert proof == a.consistency_proof(first, newest)  # the database's own answer
    assert a.recent_consistency_proof(mine, theirs[1]) == a.consistency_proof(mine, theirs[1])
    assert a.recent_inclusion_proof(4, newest) == a.inclusion_proof(4, newest)  # "b2"


def test_entries_that_do_not_give_the_signed_root_are_not_caught_up_from(
    two: tuple[LogStore, LogStore], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = two
    mine = _append(a, "a1", "a2")
    theirs = _append(b, "b1")
    with b.writer.begin() as conn:  # a leaf hash that is not the one the tree was built from
        conn.execute(text("UPDATE audit_entries SET leaf_hash = :h WHERE idx = 2"), {"h": b"\x00" * 32})
    with caplog.at_level(logging.WARNING, logger="comity.audit.store"):
        newest = _append(a, "a3")
    assert "do not give the root signed at size 3" in caplog.text
    assert theirs not in a.recent_sizes()
    # The border was read from the stored subtree hashes: the log itself is still right.
    assert a.recent_consistency_proof(mine, newest) is None
    assert a.consistency_proof(theirs, newest) == b.consistency_proof(theirs, newest)
