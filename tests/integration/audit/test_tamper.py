"""Tampering with a real log database file is detected by the offline verifier and by witnesses."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit.checkpoint import Checkpoint, sign_checkpoint
from comity.audit.cosignature import CosignatureSigner
from comity.audit.errors import InconsistentLog, LogVerificationError
from comity.audit.events import decision_event
from comity.audit.log import TransparencyLog
from comity.audit.note import Ed25519Signer
from comity.audit.rfc6962 import hash_leaf
from comity.audit.verify import verify_log
from comity.audit.witness import Witness

ORIGIN = "comity.example/log"
KEY = Ed25519PrivateKey.generate()
VKEY = Ed25519Signer(ORIGIN, KEY).verifier.to_text()
WITNESS = CosignatureSigner("ca.rcmp-node", Ed25519PrivateKey.generate())


async def _build(path: Path, count: int = 12) -> None:
    """A log of ``count`` entries, one checkpoint each; every third checkpoint is cosigned."""
    log = await TransparencyLog.open(
        f"sqlite:///{path}", origin=ORIGIN, key=KEY, witnesses=[WITNESS.verifier]
    )
    try:
        for start in range(0, count, 3):
            for i in range(start, min(start + 3, count)):
                result = await log.append(f"entry {i}".encode())
            text = (await log.checkpoint(result.tree_size)).decode().split("\n\n")[0] + "\n"
            await log.add_cosignature(result.tree_size, WITNESS.cosign(text, timestamp=1_700_000_000 + i))
    finally:
        await log.close()


def _verify(path: Path, state: Path | None = None) -> None:
    verify_log(f"sqlite:///{path}", verifier_key=VKEY, witnesses=[WITNESS.verifier.to_text()], state=state)


def _sql(path: Path, *statements: str, params: tuple[object, ...] = ()) -> None:
    with sqlite3.connect(path) as db:
        for statement in statements:
            db.execute(statement, params if "?" in statement else ())


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    await _build(path)
    return path


def test_an_untouched_log_verifies_and_remembers_its_head(db: Path, tmp_path: Path) -> None:
    report = verify_log(
        f"sqlite:///{db}", verifier_key=VKEY, witnesses=[WITNESS.verifier], state=tmp_path / "seen"
    )
    assert (report.tree_size, report.checkpoints, report.cosignatures) == (12, 13, 4)
    assert (tmp_path / "seen").read_bytes().startswith(f"{ORIGIN}\n12\n".encode())


TAMPERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "edited entry": (
        lambda p: _sql(p, "UPDATE audit_entries SET data = X'00' WHERE idx = 4"),
        "entry 4 was altered",
    ),
    "edited entry and leaf hash": (
        lambda p: _sql(
            p,
            "UPDATE audit_entries SET data = ?, leaf_hash = ? WHERE idx = 4",
            params=(b"x", hash_leaf(b"x")),
        ),
        "checkpoint 5 does not match",
    ),
    "deleted entry": (lambda p: _sql(p, "DELETE FROM audit_entries WHERE idx = 7"), "entry 7 is missing"),
    "reordered entries": (
        lambda p: _sql(
            p,
            "UPDATE audit_entries SET idx = -1 WHERE idx = 2",
            "UPDATE audit_entries SET idx = 2 WHERE idx = 3",
            "UPDATE audit_entries SET idx = 3 WHERE idx = -1",
        ),
        "checkpoint 3 does not match",
    ),
    "truncated entries": (
        lambda p: _sql(p, "DELETE FROM audit_entries WHERE idx >= 10"),
        "only 10 are stored",
    ),
    "entries without checkpoint": (
        lambda p: _sql(p, "DELETE FROM audit_checkpoints WHERE tree_size = 12"),
        "not covered by any signed checkpoint",
    ),
    "altered subtree hash": (
        lambda p: _sql(p, "UPDATE audit_nodes SET hash = ? WHERE level = 2 AND idx = 1", params=(bytes(32),)),
        "entries 4..7 was altered",
    ),
    "forged checkpoint": (
        lambda p: _sql(
            p,
            "UPDATE audit_checkpoints SET note = ? WHERE tree_size = 9",
            params=(
                sign_checkpoint(
                    Checkpoint(ORIGIN, 9, hash_leaf(b"forged")),
                    Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate()),
                ),
            ),
        ),
        "checkpoint 9",
    ),
    "forged cosignature": (
        lambda p: _sql(
            p,
            "UPDATE audit_cosignatures SET line = ? WHERE tree_size = 6",
            params=(
                CosignatureSigner("ca.rcmp-node", Ed25519PrivateKey.generate())
                .cosign(f"{ORIGIN}\n6\nAAAA\n", timestamp=1)
                .line(),
            ),
        ),
        "checkpoint 6",
    ),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_tampering_is_detected_and_named(db: Path, name: str) -> None:
    tamper, message = TAMPERS[name]
    tamper(db)
    with pytest.raises(LogVerificationError, match=message):
        _verify(db)


def test_a_rolled_back_log_is_detected_against_the_remembered_checkpoint(db: Path, tmp_path: Path) -> None:
    state = tmp_path / "seen"
    _verify(db, state)
    # Roll the whole log back to size 9: entries, subtree hashes and checkpoints all consistent.
    _sql(
        db,
        "DELETE FROM audit_entries WHERE idx >= 9",
        "DELETE FROM audit_nodes WHERE ((idx + 1) << level) > 9",
        "DELETE FROM audit_checkpoints WHERE tree_size > 9",
        "DELETE FROM audit_cosignatures WHERE tree_size > 9",
    )
    _verify(db)  # self-consistent on its own...
    with pytest.raises(LogVerificationError, match="rolled back"):
        _verify(db, state)  # ...but not with what this officer saw before


def test_a_rewritten_history_is_detected_against_the_remembered_checkpoint(tmp_path: Path) -> None:
    state = tmp_path / "seen"
    original = tmp_path / "a.db"
    rewritten = tmp_path / "b.db"

    async def build_rewritten() -> None:
        log = await TransparencyLog.open(f"sqlite:///{rewritten}", origin=ORIGIN, key=KEY)
        for i in range(12):
            await log.append(f"other {i}".encode())
        await log.close()

    asyncio.run(_build(original))
    asyncio.run(build_rewritten())
    _verify(original, state)
    with pytest.raises(LogVerificationError, match="rewritten"):
        verify_log(f"sqlite:///{rewritten}", verifier_key=VKEY, state=state)


async def test_a_split_view_shown_to_two_witnesses_is_caught(tmp_path: Path) -> None:
    shared = tmp_path / "shared.db"
    await _build(shared, count=6)
    fork = tmp_path / "fork.db"
    shutil.copy(shared, fork)
    us = Witness.open(
        tmp_path / "us.db",
        name="us.fbi-node",
        key=Ed25519PrivateKey.generate(),
        log_origin=ORIGIN,
        log_key=KEY.public_key(),
    )
    ca = Witness.open(
        tmp_path / "ca.db",
        name="ca.rcmp-node",
        key=Ed25519PrivateKey.generate(),
        log_origin=ORIGIN,
        log_key=KEY.public_key(),
    )
    views = {}
    for name, path, witness in (("honest", shared, us), ("fork", fork, ca)):
        log = await TransparencyLog.open(f"sqlite:///{path}", origin=ORIGIN, key=KEY)
        witness.witness(await log.checkpoint(6))
        result = await log.append(f"{name} entry".encode())
        proof = await log.consistency_proof(6, 7)
        witness.witness(result.checkpoint, proof)  # each view alone looks fine
        views[name] = result.checkpoint
        await log.close()
    with pytest.raises(InconsistentLog, match="split view"):
        us.witness(views["fork"])
    with pytest.raises(InconsistentLog, match="split view"):
        ca.witness(views["honest"])


async def test_openings_are_checked_against_the_logged_commitments(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    log = await TransparencyLog.open(f"sqlite:///{path}", origin=ORIGIN, key=KEY)
    for n in range(3):
        entry, openings = decision_event(
            query_id=f"q{n}",
            query_digest=bytes(32),
            at=datetime(2026, 3, 1, tzinfo=UTC),
            investigator="us.fbi/agent-7",
            agency="us.fbi",
            target_node="ca.rcmp-node",
            order_id="o",
            offence_code="c",
            categories=["subscriber"],
            allowed=True,
            rule_codes=[],
            bundle_digest="sha256:00",
            selectors=[("email", f"person{n}@example.org"), ("phone", "+15555550100")],
        )
        await log.append(entry, openings=openings)
    await log.close()
    assert verify_log(f"sqlite:///{path}", verifier_key=VKEY).openings == 6
    _sql(
        path,
        "UPDATE audit_openings SET value = 'someone-else@example.org' WHERE entry_idx = 1 AND position = 0",
    )
    with pytest.raises(LogVerificationError, match="entry 1: stored opening 0 does not open"):
        verify_log(f"sqlite:///{path}", verifier_key=VKEY)
