"""The tree and proofs against the shared RFC 6962 vectors: known answers and all probes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from comity.audit.errors import InvalidProof
from comity.audit.proof import consistency_proof, inclusion_proof, verify_consistency, verify_inclusion
from comity.audit.rfc6962 import EMPTY_ROOT, hash_leaf, root_from_leaf_hashes
from comity.audit.tree import MemoryTree

MERKLE = Path(__file__).resolve().parents[3].parent / "shared" / "vectors" / "merkle"
needs_vectors = pytest.mark.skipif(
    not MERKLE.is_dir(), reason=f"shared Merkle vectors not found at {MERKLE} (CI has them)"
)


def _known() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MERKLE / "known-answers.json").read_text())
    return data


def _probes(kind: str) -> list[Path]:
    return sorted((MERKLE / kind).rglob("*.json")) if MERKLE.is_dir() else []


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


@needs_vectors
def test_probe_count_is_complete() -> None:
    assert len(_probes("inclusion")) + len(_probes("consistency")) == 196


@needs_vectors
def test_leaf_hashes_and_roots_match_known_answers() -> None:
    known = _known()
    leaves = [bytes.fromhex(x) for x in known["leaf_inputs_hex"]]
    assert [hash_leaf(x).hex() for x in leaves] == known["leaf_hashes_hex"]
    tree = MemoryTree(hash_leaf(x) for x in leaves)
    for size, root in known["roots_by_tree_size_hex"].items():
        assert tree.root(int(size)).hex() == root
        assert root_from_leaf_hashes([hash_leaf(x) for x in leaves[: int(size)]]).hex() == root


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@needs_vectors
def test_known_inclusion_proofs_are_generated_and_verify() -> None:
    known = _known()
    tree = MemoryTree(hash_leaf(bytes.fromhex(x)) for x in known["leaf_inputs_hex"])
    for case in known["inclusion_proofs"]:
        index, size = case["leaf_index"], case["tree_size"]
        proof = inclusion_proof(index, size, tree)
        assert [h.hex() for h in proof] == case["proof_hex"]
        leaf = bytes.fromhex(known["leaf_hashes_hex"][index])
        verify_inclusion(leaf, index, size, proof, bytes.fromhex(case["root_hex"]))


@needs_vectors
def test_known_consistency_proofs_are_generated_and_verify() -> None:
    known = _known()
    tree = MemoryTree(hash_leaf(bytes.fromhex(x)) for x in known["leaf_inputs_hex"])
    for case in known["consistency_proofs"]:
        size1, size2 = case["size1"], case["size2"]
        proof = consistency_proof(size1, size2, tree)
        assert [h.hex() for h in proof] == case["proof_hex"]
        verify_consistency(
            size1, size2, proof, bytes.fromhex(case["root1_hex"]), bytes.fromhex(case["root2_hex"])
        )


@needs_vectors
@pytest.mark.parametrize("path", _probes("inclusion"), ids=lambda p: str(p.relative_to(MERKLE)))
def test_inclusion_probe(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        _b64(case["leafHash"] or ""),
        case["leafIdx"],
        case["treeSize"],
        [_b64(h) for h in case["proof"] or []],
        _b64(case["root"] or ""),
    )
    if case["wantErr"]:
        with pytest.raises(InvalidProof):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@needs_vectors
@pytest.mark.parametrize("path", _probes("consistency"), ids=lambda p: str(p.relative_to(MERKLE)))
def test_consistency_probe(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        case["size1"],
        case["size2"],
        [_b64(h) for h in case["proof"] or []],
        _b64(case["root1"] or ""),
        _b64(case["root2"] or ""),
    )
    if case["wantErr"]:
        with pytest.raises(InvalidProof):
            verify_consistency(*args)
    else:
        verify_consistency(*args)
