"""No sequence of gateway behaviour gets two forks of one log each cosigned by a quorum.

The gateway holds the log key: it signs checkpoints of both branches of a fork, sends any of
them to any witness, claims any old size and sends any proof it can compute (from either
branch, or none). Real witnesses with their own state files decide; the federation's policy
(a majority threshold in every group) judges the quorum.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comity.audit.errors import WitnessError
from comity.audit.witness import Witness
from comity.core.witnesspolicy import WitnessGroup, WitnessPolicy
from tests.unit.audit.test_witness import LOG, ORIGIN, History

POLICY = WitnessPolicy(
    (
        WitnessGroup("US", "US", ("us-1", "us-2", "us-3"), 2),
        WitnessGroup("CA", "CA", ("ca-1",), 1),
    )
)
WITNESSES = [w for g in POLICY.groups for w in g.witnesses]
SHARED = 3  # entries both branches share
LENGTH = 7  # entries in each branch

# One gateway move: (witness, branch, tree size, claimed old size, which proof to send).
moves = st.tuples(
    st.sampled_from(WITNESSES),
    st.sampled_from([0, 1]),
    st.integers(0, LENGTH),
    st.integers(0, LENGTH),
    st.sampled_from(["same branch", "other branch", "none"]),
)


def _branches() -> list[History]:
    shared = [f"e{i}".encode() for i in range(SHARED)]
    return [
        History(shared + [f"a{i}".encode() for i in range(SHARED, LENGTH)]),
        History(shared + [f"b{i}".encode() for i in range(SHARED, LENGTH)]),
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(moves, max_size=16))
def test_no_gateway_behaviour_gets_both_branches_of_a_fork_quorum_cosigned(
    plan: list[tuple[str, int, int, int, str]],
) -> None:
    branches = _branches()
    with tempfile.TemporaryDirectory() as folder:
        witnesses = {
            w: Witness.open(
                Path(folder) / f"{w}.db",
                name=w,
                key=Ed25519PrivateKey.generate(),
                log_origin=ORIGIN,
                log_key=LOG.verifier.public_key,
            )
            for w in WITNESSES
        }
        # Who cosigned which branch's checkpoint beyond the shared prefix.
        cosigned: list[dict[int, set[str]]] = [{}, {}]
        try:
            for witness, branch, size, old, proof_kind in plan:
                history = branches[branch]
                source = history if proof_kind != "other branch" else branches[1 - branch]
                proof = source.proof(old, size) if proof_kind != "none" and 0 < old < size else []
                # Also try what the witness asks for: a gateway that learns the witness's size.
                for claimed in (old, witnesses[witness].latest().size):
                    if claimed > size:
                        continue
                    if claimed != old and proof_kind != "none" and 0 < claimed < size:
                        proof = source.proof(claimed, size)
                    try:
                        witnesses[witness].add_checkpoint(claimed, proof, history.checkpoint(size))
                    except WitnessError:
                        continue
                    if size > SHARED:
                        cosigned[branch].setdefault(size, set()).add(witness)
                    break
        finally:
            for w in witnesses.values():
                w.close()
    quorum = [any(POLICY.is_quorum(ids) for ids in by_size.values()) for by_size in cosigned]
    assert not all(quorum), cosigned


def test_one_branch_alone_does_reach_a_quorum(tmp_path: Path) -> None:
    """The property is not vacuous: honest witnessing of one branch gets its quorum."""
    a, _ = _branches()
    ids = set()
    for w in ("us-1", "us-2", "ca-1"):
        witness = Witness.open(
            tmp_path / f"{w}.db",
            name=w,
            key=Ed25519PrivateKey.generate(),
            log_origin=ORIGIN,
            log_key=LOG.verifier.public_key,
        )
        witness.add_checkpoint(0, [], a.checkpoint(LENGTH))
        ids.add(w)
        witness.close()
    assert POLICY.is_quorum(ids)
