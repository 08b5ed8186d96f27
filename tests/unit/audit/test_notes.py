"""Signed notes, checkpoints and cosignatures: interoperability vectors and refusals."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint, with_cosignatures
from comity.audit.cosignature import (
    CosignatureSigner,
    CosignatureVerifier,
    cosignature_timestamp,
    cosigned_message,
)
from comity.audit.errors import InvalidNote, UnverifiedNote
from comity.audit.note import Ed25519Signer, Ed25519Verifier, Note, NoteSignature, open_note, sign_note
from comity.audit.rfc6962 import EMPTY_ROOT, hash_leaf

# golang.org/x/mod/sumdb/note's documented example key and note.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann "
    + "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()
# transparency-dev/formats note tests: a type 0x01 key whose base64 holds '+', and a witness key (0x04).
PLUS_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
REMORA_SIGNATURE = (
    "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=="
)

ORIGIN = "comity.example/log"


def test_go_note_vector_signs_and_opens_byte_for_byte() -> None:
    signer = Ed25519Signer.from_text(GO_SKEY)
    assert signer.verifier.to_text() == GO_VKEY
    assert sign_note(GO_TEXT, signer) == GO_NOTE
    assert open_note(GO_NOTE, [Ed25519Verifier.from_text(GO_VKEY)]).text == GO_TEXT


def test_verifier_keys_of_other_implementations_round_trip() -> None:
    assert Ed25519Verifier.from_text(PLUS_VKEY).to_text() == PLUS_VKEY
    assert CosignatureVerifier.from_text(REMORA_VKEY).to_text() == REMORA_VKEY
    with pytest.raises(InvalidNote):
        Ed25519Verifier.from_text(REMORA_VKEY)  # a 0x04 key is not a note-signing key
    with pytest.raises(InvalidNote, match="key ID"):
        Ed25519Verifier.from_text(GO_VKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(InvalidNote):
        Ed25519Verifier.from_text(GO_VKEY.replace("c74f20a3", "C74F20A3"))


def test_cosignature_timestamp_of_a_published_line() -> None:
    blob = base64.b64decode(REMORA_SIGNATURE)
    line = NoteSignature("remora.n621.de", int.from_bytes(blob[:4], "big"), blob[4:])
    assert cosignature_timestamp(line) == 1727964367


def test_note_with_a_tampered_text_or_signature_is_refused() -> None:
    verifier = Ed25519Verifier.from_text(GO_VKEY)
    with pytest.raises(UnverifiedNote):
        open_note(GO_NOTE.replace(b"problem,", b"problem;"), [verifier])
    with pytest.raises(UnverifiedNote, match="no signature by a trusted key"):
        open_note(GO_NOTE, [Ed25519Signer("PeterNeumann", Ed25519PrivateKey.generate()).verifier])


@pytest.mark.parametrize(
    "data",
    [
        "no blank line\n\u2014 a AAAAAAAA\n".encode(),
        b"text\n\n",
        b"text\n\n- a AAAAAAAA\n",
        b"text\x07\n\n\xe2\x80\x94 a AAAAAAAA\n",
        b"\xff\n\n\xe2\x80\x94 a AAAAAAAA\n",
        b"text\n\n\xe2\x80\x94 a AAAAAAAA",
        b"text\n\n\xe2\x80\x94 a !!!!\n",
    ],
)
def test_malformed_notes_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidNote):
        Note.parse(data)


def test_unknown_signatures_are_ignored_and_a_bad_known_one_fails() -> None:
    log = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
    other = Ed25519Signer("other.example", Ed25519PrivateKey.generate())
    text = "hello\n"
    both = Note(text, (other.sign(text), log.sign(text))).to_bytes()
    assert [s.name for s in open_note(both, [log.verifier]).signatures] == [ORIGIN]
    forged = NoteSignature(ORIGIN, log.verifier.key_id, bytes(64))
    with pytest.raises(UnverifiedNote):
        open_note(Note(text, (log.sign(text), forged)).to_bytes(), [log.verifier])


def test_checkpoint_body_round_trip_and_strict_parsing() -> None:
    checkpoint = Checkpoint(ORIGIN, 20852163, hash_leaf(b"x"), ("ext one",))
    assert Checkpoint.from_text(checkpoint.to_text()) == checkpoint
    root = base64.b64encode(EMPTY_ROOT).decode()
    for bad in [
        f"{ORIGIN}\n01\n{root}\n",
        f"{ORIGIN}\n-1\n{root}\n",
        f"{ORIGIN}\n1\n{root}",
        f"{ORIGIN}\n1\n",
        "\n1\n" + root + "\n",
    ]:
        with pytest.raises(InvalidNote):
            Checkpoint.from_text(bad)
    with pytest.raises(InvalidNote):
        Checkpoint.from_text(f"{ORIGIN}\n1\n{base64.b64encode(b'short').decode()}\n")
    with pytest.raises(InvalidNote):
        Checkpoint.from_text(f"{ORIGIN}\n1\n{root}\n\n")


def test_signed_checkpoint_with_cosignatures() -> None:
    log = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
    witness = CosignatureSigner("ca.rcmp-node", Ed25519PrivateKey.generate())
    checkpoint = Checkpoint(ORIGIN, 3, hash_leaf(b"x"))
    note = sign_checkpoint(checkpoint, log)
    cosig = witness.cosign(checkpoint.to_text(), timestamp=1_700_000_000)
    cosigned = with_cosignatures(note, [cosig])
    opened = open_checkpoint(cosigned, log.verifier, witnesses=[witness.verifier])
    assert opened.checkpoint == checkpoint
    assert opened.cosignatures == (cosig,)
    assert cosignature_timestamp(cosig) == 1_700_000_000
    assert cosigned_message(checkpoint.to_text(), 5).startswith(b"cosignature/v1\ntime 5\n" + ORIGIN.encode())
    # A cosignature made at one time does not verify at another.
    shifted = NoteSignature(cosig.name, cosig.key_id, (7).to_bytes(8, "big") + cosig.signature[8:])
    with pytest.raises(UnverifiedNote):
        witness.verifier.verify(checkpoint.to_text(), shifted)


def test_checkpoint_refusals() -> None:
    log = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
    impostor = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
    checkpoint = Checkpoint(ORIGIN, 3, hash_leaf(b"x"))
    with pytest.raises(UnverifiedNote):
        open_checkpoint(sign_checkpoint(checkpoint, impostor), log.verifier)
    with pytest.raises(InvalidNote, match="origin"):
        sign_checkpoint(Checkpoint("elsewhere", 3, hash_leaf(b"x")), log)
    # Signed by the right key but for another origin: the key's name must be the origin.
    other = Ed25519Signer("elsewhere", log.private_key)
    with pytest.raises(UnverifiedNote):
        open_checkpoint(sign_checkpoint(Checkpoint("elsewhere", 3, hash_leaf(b"x")), other), log.verifier)
    # A witness's cosignature alone is not the log's signature.
    witness = CosignatureSigner("w", Ed25519PrivateKey.generate())
    only_cosigned = Note(
        checkpoint.to_text(), (witness.cosign(checkpoint.to_text(), timestamp=1),)
    ).to_bytes()
    with pytest.raises(UnverifiedNote):
        open_checkpoint(only_cosigned, log.verifier, witnesses=[witness.verifier])
