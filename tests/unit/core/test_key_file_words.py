"""Key files and the verifier's state that cannot be read say what is wrong in words, never the
parser's own text, and how to fix it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comity.audit.errors import LogVerificationError
from comity.audit.verifystate import VerifierState
from comity.core.issuer import load_issuer_key
from comity.core.keys import KeyFileError, SigningKey, load_public_key, public_key_from_text

# Words of the libraries underneath, which must not reach a person.
RAW = (
    "Could not deserialize",
    "ASN.1",
    "Incorrect padding",
    "Expecting value",
    "line 1 column",
    "Unable to load",
)


def _clean(err: pytest.ExceptionInfo[Exception]) -> str:
    words = err.value.diagnostics() if hasattr(err.value, "diagnostics") else str(err.value)
    assert not any(raw in words for raw in RAW), words
    return words


@pytest.mark.parametrize("text", ["ed25519:not-base64!!", "ed25519:AAAA"])
def test_a_bad_inline_public_key(text: str) -> None:
    with pytest.raises(KeyFileError) as err:
        public_key_from_text(text)
    assert "base64 of 32 bytes" in _clean(err)


def test_a_private_key_file_that_is_not_pem(tmp_path: Path) -> None:
    path = tmp_path / "decision.key"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyFileError) as err:
        SigningKey.load(path, key_id="k")
    words = _clean(err)
    assert str(path) in words and "not a readable PEM private key" in words and "comity init" in words


def test_an_issuer_key_that_is_not_pem(tmp_path: Path) -> None:
    path = tmp_path / "issuer.key"
    path.write_text("garbage")
    with pytest.raises(KeyFileError) as err:
        load_issuer_key(path)
    assert "comity keys issuer" in _clean(err)


def test_a_public_key_file_missing_or_not_pem(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as missing:
        load_public_key(str(tmp_path / "absent.pub"))
    assert "cannot read public key file" in _clean(missing)
    bad = tmp_path / "bad.pub"
    bad.write_text("garbage")
    with pytest.raises(KeyFileError) as err:
        load_public_key(str(bad))
    assert "is not a PEM public key" in _clean(err) and "ed25519:<base64>" in _clean(err)


def test_a_damaged_verifier_state(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_text("{ not json")
    with pytest.raises(LogVerificationError) as err:
        VerifierState.load(path)
    words = _clean(err)
    assert "is damaged" in words and "restore it from a backup" in words


def test_a_verifier_state_of_another_format(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_text(json.dumps({"format": "comity-verify-state/99"}))
    with pytest.raises(LogVerificationError) as err:
        VerifierState.load(path)
    words = _clean(err)
    assert "comity-verify-state/99" in words and "newer one" in words
