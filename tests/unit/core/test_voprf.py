"""RFC 9497 VOPRF (ristretto255-SHA512): the RFC's test vectors, and every tampering refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from comity.core import voprf

_VECTORS = json.loads((Path(__file__).parent / "data" / "rfc9497_ristretto255_sha512_voprf.json").read_text())


def _h(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


@pytest.fixture
def key() -> voprf.KeyPair:
    return voprf.derive_key_pair(bytes.fromhex(_VECTORS["Seed"]), bytes.fromhex(_VECTORS["KeyInfo"]))


def test_derive_key_pair_matches_the_rfc(key: voprf.KeyPair) -> None:
    assert key.sk.hex() == _VECTORS["skSm"]
    assert key.pk.hex() == _VECTORS["pkSm"]


@pytest.mark.parametrize("vector", _VECTORS["vectors"], ids=["A.1.2.1", "A.1.2.2", "A.1.2.3-batch"])
def test_vector(vector: dict[str, Any], key: voprf.KeyPair) -> None:
    inputs, blinds = _h(vector["Input"]), _h(vector["Blind"])
    blinded = [voprf.blind_with(x, b) for x, b in zip(inputs, blinds, strict=True)]
    assert [b.hex() for b in blinded] == vector["BlindedElement"]
    evaluated, proof = voprf.blind_evaluate(key, blinded, r=bytes.fromhex(vector["ProofRandomScalar"]))
    assert [e.hex() for e in evaluated] == vector["EvaluationElement"]
    assert proof.hex() == vector["Proof"]
    outputs = voprf.finalize(key.pk, inputs, blinds, blinded, evaluated, proof)
    assert [o.hex() for o in outputs] == vector["Output"]
    # The key holder's direct evaluation gives the same outputs (what a node's filter holds).
    assert [voprf.evaluate(key, x).hex() for x in inputs] == vector["Output"]


def test_round_trip_with_random_blinds_and_proof() -> None:
    key = voprf.generate_key_pair()
    inputs = [b"EMAIL\x00alice@example.org", b"PHONE\x00+15550100"]
    blinds, blinded = zip(*(voprf.blind(x) for x in inputs), strict=True)
    evaluated, proof = voprf.blind_evaluate(key, list(blinded))
    outputs = voprf.finalize(key.pk, inputs, list(blinds), list(blinded), evaluated, proof)
    assert outputs == [voprf.evaluate(key, x) for x in inputs]


def test_same_input_blinded_twice_gives_unrelated_elements() -> None:
    first = voprf.blind(b"EMAIL\x00alice@example.org")
    second = voprf.blind(b"EMAIL\x00alice@example.org")
    assert first[0] != second[0]
    assert first[1] != second[1]


def _evaluation() -> tuple[voprf.KeyPair, list[bytes], list[bytes], list[bytes], list[bytes], bytes]:
    key = voprf.generate_key_pair()
    inputs = [b"a", b"b"]
    blinds, blinded = (list(t) for t in zip(*(voprf.blind(x) for x in inputs), strict=True))
    evaluated, proof = voprf.blind_evaluate(key, blinded)
    return key, inputs, blinds, blinded, evaluated, proof


def test_tampered_proof_refused() -> None:
    key, inputs, blinds, blinded, evaluated, proof = _evaluation()
    for i in (0, 40):
        bad = bytearray(proof)
        bad[i] ^= 1
        with pytest.raises(voprf.InvalidProof):
            voprf.finalize(key.pk, inputs, blinds, blinded, evaluated, bytes(bad))


def test_evaluation_under_another_key_refused() -> None:
    key, inputs, blinds, blinded, _, _ = _evaluation()
    other = voprf.generate_key_pair()
    evaluated, proof = voprf.blind_evaluate(other, blinded)
    with pytest.raises(voprf.InvalidProof):
        voprf.finalize(key.pk, inputs, blinds, blinded, evaluated, proof)


def test_swapped_evaluations_refused() -> None:
    key, inputs, blinds, blinded, evaluated, proof = _evaluation()
    with pytest.raises(voprf.InvalidProof):
        voprf.finalize(key.pk, inputs, blinds, blinded, evaluated[::-1], proof)


def test_missing_evaluation_refused() -> None:
    key, inputs, blinds, blinded, evaluated, proof = _evaluation()
    with pytest.raises(voprf.InvalidProof):
        voprf.finalize(key.pk, inputs, blinds, blinded, evaluated[:1], proof)


@pytest.mark.parametrize("element", [bytes(32), b"\xff" * 32, b"\x01" * 31])
def test_invalid_blinded_elements_refused(element: bytes) -> None:
    with pytest.raises(voprf.InvalidInput):
        voprf.blind_evaluate(voprf.generate_key_pair(), [element])


def test_non_canonical_blind_refused() -> None:
    with pytest.raises(voprf.InvalidInput):
        voprf.blind_with(b"x", b"\xff" * 32)


def test_expand_message_xmd_rfc9380_vector() -> None:
    # RFC 9380 appendix K.3 (expand_message_xmd(SHA-512)), msg "" and len_in_bytes 0x20.
    out = voprf.expand_message_xmd(b"", b"QUUX-V01-CS02-with-expander-SHA512-256", 0x20)
    assert out.hex() == "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba"
