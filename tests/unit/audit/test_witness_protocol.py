"""C2SP tlog-witness add-checkpoint: old size, consistency proof, checkpoint → cosignature or refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit.checkpoint import open_checkpoint
from comity.audit.errors import ConsistencyRequired, InconsistentLog, WitnessError
from comity.audit.note import Ed25519Signer, NoteSignature
from comity.audit.witness import MAX_PROOF_HASHES, Witness
from tests.unit.audit.test_witness import LOG, ORIGIN, History, _witness


def test_cosigns_growth_from_the_size_it_is_at_and_refuses_another_old_size_with_its_own(
    tmp_path: Path,
) -> None:
    log = History([f"e{i}".encode() for i in range(9)])
    witness = _witness(tmp_path / "w.db")
    line = witness.add_checkpoint(0, [], log.checkpoint(4))
    witness.verifier.verify(
        open_checkpoint(log.checkpoint(4), LOG.verifier).text, NoteSignature.parse_line(line.rstrip("\n"))
    )
    with pytest.raises(ConsistencyRequired) as conflict:
        witness.add_checkpoint(0, [], log.checkpoint(9))
    assert conflict.value.from_size == 4  # the caller retries from here
    assert witness.add_checkpoint(4, log.proof(4, 9), log.checkpoint(9))
    assert witness.add_checkpoint(9, [], log.checkpoint(9))  # the same checkpoint again: cosigned again
    assert witness.latest().size == 9


def test_the_latest_cosigned_checkpoint_is_served_with_its_cosignature_across_restarts(
    tmp_path: Path,
) -> None:
    log = History([b"a", b"b", b"c"])
    key = Ed25519PrivateKey.generate()
    witness = Witness.open(
        tmp_path / "w.db", name="us-node", key=key, log_origin=ORIGIN, log_key=LOG.verifier.public_key
    )
    assert witness.latest_cosigned() is None
    witness.add_checkpoint(0, [], log.checkpoint(3))
    witness.close()
    again = Witness.open(
        tmp_path / "w.db", name="us-node", key=key, log_origin=ORIGIN, log_key=LOG.verifier.public_key
    )
    note = again.latest_cosigned()
    assert note is not None
    signed = open_checkpoint(note, LOG.verifier, witnesses=[again.verifier])
    assert signed.checkpoint.size == 3 and [c.name for c in signed.cosignatures] == ["us-node"]


def test_a_fork_is_refused_and_kept_as_evidence(tmp_path: Path) -> None:
    real = History([b"a", b"b", b"c", b"d"])
    fork = History([b"a", b"b", b"X", b"d", b"e"])
    witness = _witness(tmp_path / "w.db")
    witness.add_checkpoint(0, [], real.checkpoint(4))
    with pytest.raises(InconsistentLog):
        witness.add_checkpoint(4, fork.proof(4, 5), fork.checkpoint(5))  # a proof of the fork's own history
    with pytest.raises(InconsistentLog):
        witness.add_checkpoint(4, [], fork.checkpoint(4))  # split view: same size, another root
    assert [note for _, note in witness.evidence()] == [fork.checkpoint(5), fork.checkpoint(4)]
    assert witness.latest().root_hash == real.tree.root(4)


@pytest.mark.parametrize(
    ("old", "proof_of", "why"),
    [(5, None, "larger than the checkpoint"), (0, (1, 3), "from tree size 0 must be empty")],
)
def test_malformed_requests_are_refused(
    tmp_path: Path, old: int, proof_of: tuple[int, int] | None, why: str
) -> None:
    log = History([b"a", b"b", b"c"])
    witness = _witness(tmp_path / "w.db")
    proof = [] if proof_of is None else log.proof(*proof_of)
    with pytest.raises(WitnessError, match=why):
        witness.add_checkpoint(old, proof, log.checkpoint(3))


def test_a_checkpoint_not_signed_by_the_log_or_with_an_overlong_proof_is_refused(tmp_path: Path) -> None:
    log = History([b"a", b"b"])
    witness = _witness(tmp_path / "w.db")
    forger = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(WitnessError, match="refusing the checkpoint"):
        witness.add_checkpoint(0, [], log.checkpoint(2, forger))
    witness.add_checkpoint(0, [], log.checkpoint(1))
    with pytest.raises(WitnessError, match="at most"):
        witness.add_checkpoint(1, [b"\0" * 32] * (MAX_PROOF_HASHES + 1), log.checkpoint(2))
    assert witness.latest().size == 1
