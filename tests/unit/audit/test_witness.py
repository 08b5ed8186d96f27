"""Witnesses: accept consistent growth, cosign, persist; refuse split views, rollbacks, forgeries."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from comity.audit.errors import ConsistencyRequired, InconsistentLog, WitnessError
from comity.audit.note import Ed25519Signer, Ed25519Verifier, NoteSignature
from comity.audit.proof import consistency_proof, inclusion_proof
from comity.audit.rfc6962 import hash_leaf
from comity.audit.tree import MemoryTree
from comity.audit.witness import Witness
from comity.core.keyhistory import LogKeyHistory, SizedKey
from comity.core.keys import VerifyingKey

ORIGIN = "comity.example/log"
LOG = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())


class History:
    """A log's history held in memory: the tree, and signed checkpoints of any prefix."""

    def __init__(self, entries: list[bytes]) -> None:
        self.entries = entries
        self.tree = MemoryTree(hash_leaf(e) for e in entries)

    def checkpoint(self, size: int, signer: Ed25519Signer = LOG) -> bytes:
        return sign_checkpoint(Checkpoint(ORIGIN, size, self.tree.root(size)), signer)

    def proof(self, first: int, second: int) -> list[bytes]:
        return consistency_proof(first, second, self.tree)


def _witness(path: Path, name: str = "ca.rcmp-node") -> Witness:
    return Witness.open(
        path,
        name=name,
        key=Ed25519PrivateKey.generate(),
        log_origin=ORIGIN,
        log_key=LOG.verifier.public_key,
        clock=lambda: 1_700_000_000,
    )


def test_accepts_consistent_growth_cosigns_and_remembers_across_restarts(tmp_path: Path) -> None:
    log = History([f"e{i}".encode() for i in range(10)])
    key = Ed25519PrivateKey.generate()
    witness = Witness.open(
        tmp_path / "w.db",
        name="ca.rcmp-node",
        key=key,
        log_origin=ORIGIN,
        log_key=LOG.verifier.public_key,
        clock=lambda: 7,
    )
    line = witness.witness(log.checkpoint(3))  # from the empty tree: no proof needed
    signature = NoteSignature.parse_line(line.rstrip("\n"))
    witness.verifier.verify(open_checkpoint(log.checkpoint(3), LOG.verifier).text, signature)
    witness.witness(log.checkpoint(7), log.proof(3, 7))
    witness.close()
    again = Witness.open(
        tmp_path / "w.db", name="ca.rcmp-node", key=key, log_origin=ORIGIN, log_key=LOG.verifier.public_key
    )
    assert again.latest().size == 7
    with pytest.raises(ConsistencyRequired) as missing:
        again.witness(log.checkpoint(10))
    assert missing.value.from_size == 7
    assert again.witness(log.checkpoint(10), log.proof(7, 10))
    # The same checkpoint again is fine (re-cosigned); an older known one is accepted, not cosigned.
    assert again.witness(log.checkpoint(10))
    assert again.witness(log.checkpoint(3)) == ""
    # An older unknown one needs a proof that the newest extends it.
    with pytest.raises(ConsistencyRequired):
        again.witness(log.checkpoint(5))
    assert again.witness(log.checkpoint(5), log.proof(5, 10)) == ""


def test_split_view_shown_to_two_witnesses_is_detected(tmp_path: Path) -> None:
    honest = History([f"e{i}".encode() for i in range(8)])
    forked = History([*honest.entries[:5], b"rewritten", *honest.entries[6:]])
    us, ca = _witness(tmp_path / "us.db", "us.fbi-node"), _witness(tmp_path / "ca.db")
    us.witness(honest.checkpoint(5))
    ca.witness(honest.checkpoint(5))
    # Each country is shown a different tree of size 8, each with a valid-looking proof.
    us.witness(honest.checkpoint(8), honest.proof(5, 8))
    ca.witness(forked.checkpoint(8), forked.proof(5, 8))
    # The fork cannot stay hidden: the moment either witness sees the other history, it refuses.
    with pytest.raises(InconsistentLog, match="split view"):
        us.witness(forked.checkpoint(8))
    with pytest.raises(InconsistentLog):
        ca.witness(honest.checkpoint(8))


def test_a_fork_before_the_last_accepted_tree_is_refused(tmp_path: Path) -> None:
    honest = History([f"e{i}".encode() for i in range(10)])
    forked = History([b"rewritten", *honest.entries[1:]])
    witness = _witness(tmp_path / "w.db")
    witness.witness(honest.checkpoint(4))
    with pytest.raises(InconsistentLog):
        witness.witness(forked.checkpoint(10), forked.proof(4, 10))
    with pytest.raises(InconsistentLog):
        witness.witness(forked.checkpoint(10), honest.proof(4, 10))
    # A rolled-back log (an older size with another root than remembered).
    witness.witness(honest.checkpoint(10), honest.proof(4, 10))
    with pytest.raises(InconsistentLog, match="rollback"):
        witness.witness(forked.checkpoint(4))
    assert witness.latest().root_hash == honest.tree.root(10)


def test_forged_checkpoints_are_refused(tmp_path: Path) -> None:
    log = History([b"a", b"b"])
    witness = _witness(tmp_path / "w.db")
    impostor = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(WitnessError, match="refusing"):
        witness.witness(log.checkpoint(2, impostor))
    tampered = log.checkpoint(2).replace(b"\n2\n", b"\n3\n")
    with pytest.raises(WitnessError):
        witness.witness(tampered)
    assert witness.latest().size == 0


def test_witness_entry_checks_the_inclusion_proof(tmp_path: Path) -> None:
    log = History([f"e{i}".encode() for i in range(6)])
    witness = _witness(tmp_path / "w.db")
    proof = inclusion_proof(4, 6, log.tree)
    line = witness.witness_entry(checkpoint=log.checkpoint(6), entry=b"e4", leaf_index=4, inclusion=proof)
    assert line.startswith("\u2014 ca.rcmp-node ")
    with pytest.raises(WitnessError, match="not proven"):
        witness.witness_entry(checkpoint=log.checkpoint(6), entry=b"e5", leaf_index=4, inclusion=proof)


def test_witness_entry_verifies_the_log_signature_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One Ed25519 verify per witnessed query: a second opening of the same note would add one.
    log = History([f"e{i}".encode() for i in range(6)])
    witness = _witness(tmp_path / "w.db")
    checkpoint, proof = log.checkpoint(6), inclusion_proof(4, 6, log.tree)
    verified: list[str] = []
    real = Ed25519Verifier.verify

    def counting(self: Ed25519Verifier, text: str, signature: NoteSignature) -> None:
        verified.append(self.name)
        real(self, text, signature)

    monkeypatch.setattr(Ed25519Verifier, "verify", counting)
    witness.witness_entry(checkpoint=checkpoint, entry=b"e4", leaf_index=4, inclusion=proof)
    assert verified == [ORIGIN]
    forged = History([f"x{i}".encode() for i in range(6)]).checkpoint(
        6, Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
    )
    with pytest.raises(WitnessError):
        witness.witness_entry(checkpoint=forged, entry=b"e4", leaf_index=4, inclusion=proof)


def test_proof_needed_names_the_proof_for_the_state_the_witness_is_in(tmp_path: Path) -> None:
    log = History([f"e{i}".encode() for i in range(12)])
    witness = _witness(tmp_path / "w.db")
    assert witness.proof_needed(5) is None  # nothing accepted yet
    witness.witness(log.checkpoint(5))
    witness.witness(log.checkpoint(8), log.proof(5, 8))
    assert witness.proof_needed(8) is None
    assert witness.proof_needed(10) == (8, 10)
    assert witness.proof_needed(5) is None  # remembered
    assert witness.proof_needed(6) == (6, 8)


def test_witness_entry_asks_for_the_proof_under_its_lock_and_a_refusal_leaves_it_unmoved(
    tmp_path: Path,
) -> None:
    log = History([f"e{i}".encode() for i in range(12)])
    witness = _witness(tmp_path / "w.db")
    witness.witness(log.checkpoint(5))
    asked: list[tuple[int, int]] = []

    def proof_for(first: int, second: int) -> list[bytes]:
        asked.append((first, second))
        # The tlog-witness call cannot move the witness meanwhile: it waits for the same lock.
        return log.proof(first, second)

    proof = inclusion_proof(9, 10, log.tree)
    line = witness.witness_entry(
        checkpoint=log.checkpoint(10),
        entry=b"e9",
        leaf_index=9,
        inclusion=proof,
        consistency=log.proof(3, 10),  # ignored with proof_for
        proof_for=proof_for,
    )
    assert line and asked == [(5, 10)] and witness.latest().size == 10

    def refuse(first: int, second: int) -> list[bytes]:
        raise ConsistencyRequired("elsewhere", from_size=first)

    with pytest.raises(ConsistencyRequired):
        witness.witness_entry(
            checkpoint=log.checkpoint(12),
            entry=b"e9",
            leaf_index=9,
            inclusion=inclusion_proof(9, 12, log.tree),
            proof_for=refuse,
        )
    assert witness.latest().size == 10
    # A forged proof handed through proof_for is refused like any other.
    with pytest.raises(InconsistentLog):
        witness.witness_entry(
            checkpoint=log.checkpoint(12),
            entry=b"e9",
            leaf_index=9,
            inclusion=inclusion_proof(9, 12, log.tree),
            proof_for=lambda first, second: [b"\0" * 32 for _ in log.proof(first, second)],
        )
    assert witness.latest().size == 10


def test_a_log_key_history_given_while_running_is_followed_at_once(tmp_path: Path) -> None:
    """A newer federation file ends the log key at size 5: from then on the witness refuses what
    that key signs beyond it, and accepts the new key from there, with no restart."""
    log = History([f"e{i}".encode() for i in range(10)])
    new = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
    old_key = VerifyingKey(ORIGIN, LOG.verifier.public_key)
    witness = Witness.open(
        tmp_path / "w.db",
        name="ca.rcmp-node",
        key=Ed25519PrivateKey.generate(),
        log_origin=ORIGIN,
        log_key=LOG.verifier.public_key,
        log_keys=LogKeyHistory.single(old_key),
    )
    assert witness.witness(log.checkpoint(3))
    witness.use_log_keys(
        LogKeyHistory(
            (
                SizedKey(old_key, until_size=5),
                SizedKey(VerifyingKey(ORIGIN, new.verifier.public_key), from_size=5),
            )
        )
    )
    with pytest.raises(WitnessError):
        witness.witness(log.checkpoint(7), log.proof(3, 7))  # the old key, beyond its range
    assert witness.latest().size == 3
    assert witness.witness(log.checkpoint(7, new), log.proof(3, 7))
