"""DSSE envelopes and Ed25519 keys."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from comity.core.dsse import (
    PAYLOAD_ORDER,
    PAYLOAD_QUERY,
    EnvelopeError,
    UnknownSigner,
    pae,
    sign_envelope,
    verify_envelope,
)
from comity.core.errors import InvalidArgument
from comity.core.keys import KeyFileError, SigningKey, public_key_from_text


def test_pae_matches_the_dsse_spec_example() -> None:
    # The example from the DSSE protocol document.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_sign_then_verify_returns_exact_payload_and_signer() -> None:
    key = SigningKey.generate("us.fbi/agent-1")
    env = sign_envelope(PAYLOAD_QUERY, b"\x00payload", key)
    payload, signer = verify_envelope(env, payload_type=PAYLOAD_QUERY, keys={key.key_id: key.verifying_key})
    assert payload == b"\x00payload"
    assert signer.key_id == "us.fbi/agent-1"


def test_tampered_payload_fails() -> None:
    key = SigningKey.generate("k")
    env = sign_envelope(PAYLOAD_QUERY, b"payload", key)
    env.payload = b"payloaD"
    with pytest.raises(EnvelopeError, match="does not verify"):
        verify_envelope(env, payload_type=PAYLOAD_QUERY, keys={"k": key.verifying_key})


def test_unregistered_key_fails() -> None:
    key = SigningKey.generate("intruder")
    env = sign_envelope(PAYLOAD_QUERY, b"payload", key)
    other = SigningKey.generate("k")
    with pytest.raises(UnknownSigner, match="intruder"):
        verify_envelope(env, payload_type=PAYLOAD_QUERY, keys={"k": other.verifying_key})


def test_signature_by_other_key_under_a_known_id_fails() -> None:
    forger = SigningKey.generate("k")
    real = SigningKey.generate("k")
    env = sign_envelope(PAYLOAD_QUERY, b"payload", forger)
    with pytest.raises(EnvelopeError):
        verify_envelope(env, payload_type=PAYLOAD_QUERY, keys={"k": real.verifying_key})


def test_payload_type_confusion_is_refused() -> None:
    key = SigningKey.generate("k")
    env = sign_envelope(PAYLOAD_ORDER, b"payload", key)
    with pytest.raises(InvalidArgument, match="payload type"):
        verify_envelope(env, payload_type=PAYLOAD_QUERY, keys={"k": key.verifying_key})


def test_type_is_covered_by_signature() -> None:
    key = SigningKey.generate("k")
    env = sign_envelope(PAYLOAD_ORDER, b"payload", key)
    env.payload_type = PAYLOAD_QUERY
    with pytest.raises(EnvelopeError):
        verify_envelope(env, payload_type=PAYLOAD_QUERY, keys={"k": key.verifying_key})


def test_unsigned_envelope_fails() -> None:
    key = SigningKey.generate("k")
    env = sign_envelope(PAYLOAD_QUERY, b"payload", key)
    del env.signatures[:]
    with pytest.raises(EnvelopeError, match="not signed"):
        verify_envelope(env, payload_type=PAYLOAD_QUERY, keys={"k": key.verifying_key})


def test_key_file_is_private_and_round_trips(tmp_path: Path) -> None:
    key = SigningKey.generate("k")
    path = tmp_path / "k.pem"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = SigningKey.load(path, key_id="k")
    assert loaded.verifying_key.to_text() == key.verifying_key.to_text()


def test_encrypted_key_needs_its_passphrase(tmp_path: Path) -> None:
    key = SigningKey.generate("k")
    path = tmp_path / "k.pem"
    key.save(path, passphrase=b"correct horse")
    with pytest.raises(KeyFileError, match="encrypted"):
        SigningKey.load(path, key_id="k")
    with pytest.raises(KeyFileError):
        SigningKey.load(path, key_id="k", passphrase=b"wrong")
    assert SigningKey.load(path, key_id="k", passphrase=b"correct horse").key_id == "k"


@pytest.mark.parametrize("text", ["", "ed25519:", "rsa:AAAA", "ed25519:not-base64!", "ed25519:AAAA"])
def test_bad_public_key_text_is_refused(text: str) -> None:
    with pytest.raises(KeyFileError):
        public_key_from_text(text)
