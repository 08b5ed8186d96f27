"""Signed releases of the federation file: pinned first versions, threshold-signed next versions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from comity.core.bootstrap import FederationLayout, init_federation
from comity.core.dsse import pae
from comity.core.errors import ConfigError
from comity.core.federation import Federation
from comity.core.federation_sign import (
    PAYLOAD_FEDERATION,
    BadVersion,
    BelowThreshold,
    EditedAfterSigning,
    Expired,
    FederationTrustError,
    NotPinned,
    PinMismatch,
    UnsignedPredecessor,
    envelope_path,
    file_sha256,
    sign_federation_file,
    verify_pinned,
    verify_update,
)
from comity.core.keys import SigningKey
from comity.core.order_file import read_envelope, write_envelope
from comity.sdk.cli.federation_cmd import app
from comity.v1 import comity_pb2 as pb

Format2 = Callable[..., str]  # the conftest's format2 fixture
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
A, B, C = (SigningKey.generate(f"{agency}/federation-2026") for agency in ("us.fbi", "ca.rcmp", "us.doj"))
D, E = (SigningKey.generate(f"{agency}/federation-2027") for agency in ("us.fbi", "ca.rcmp"))


def signing(threshold: int, *keys: SigningKey) -> str:
    listed = "".join(
        f'[[signing.keys]]\nid = "{k.key_id}"\nkey = "{k.verifying_key.to_text()}"\n' for k in keys
    )
    return f"\n[signing]\nthreshold = {threshold}\n{listed}"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(
        tmp_path_factory.mktemp("fed"),
        gateway_port=7443,
        countries={"US": 7101, "CA": 7102},
        format=1,
        name="us-ca",
    )


@pytest.fixture
def release(layout: FederationLayout, format2: Format2, tmp_path: Path) -> Callable[..., Path]:
    """Write a version of the federation beside the layout's files; returns its path."""
    base = layout.federation_file.read_text()
    counter = iter(range(1000))

    def write(
        version: int,
        *,
        keys: tuple[SigningKey, ...] = (A, B, C),
        threshold: int = 2,
        expires: str = "2027-06-01T00:00:00Z",
        name: str = "us-ca",
        signed_by: tuple[SigningKey, ...] = (),
    ) -> Path:
        header = f"version = {version}\nexpires = {expires}\n"
        text = format2(base.replace('name = "us-ca"', f'name = "{name}"'), header=header)
        text += signing(threshold, *keys) if keys else ""
        path = layout.directory / f"{tmp_path.name}-{next(counter)}-v{version}.toml"
        path.write_text(text, encoding="utf-8")
        for key in signed_by:
            sign_federation_file(path, key)
        return path

    return write


def test_a_first_version_is_trusted_by_its_pin_only(release: Callable[..., Path]) -> None:
    v1 = release(1, signed_by=(A, B, C))
    fed = verify_pinned(v1, file_sha256(v1.read_bytes()), now=NOW)
    assert (fed.version, fed.expires, fed.signing and fed.signing.threshold) == (
        1,
        datetime(2027, 6, 1, tzinfo=UTC),
        2,
    )
    assert fed.signing and set(fed.signing.keys) == {A.key_id, B.key_id, C.key_id}
    assert verify_pinned(v1, "sha256:" + file_sha256(v1.read_bytes()).upper(), now=NOW).version == 1
    # Signed by every key it names, and still not trusted without a pin: it would certify itself.
    with pytest.raises(NotPinned, match="its own signatures prove nothing") as info:
        verify_pinned(v1, None, now=NOW)
    assert info.value.check == "FEDERATION_NOT_PINNED"
    with pytest.raises(PinMismatch, match="is not the pinned"):
        verify_pinned(v1, "0" * 64, now=NOW)


def test_the_next_version_signed_by_the_threshold_of_the_trusted_keys_is_trusted(
    release: Callable[..., Path],
) -> None:
    v1 = Federation.load(release(1))
    v2 = release(2, signed_by=(A, C))
    assert verify_update(v1, v2, now=NOW).version == 2
    envelope = read_envelope(envelope_path(v2))
    assert envelope.payload_type == PAYLOAD_FEDERATION
    assert envelope.payload == v2.read_bytes()
    assert [s.keyid for s in envelope.signatures] == [A.key_id, C.key_id]


def test_below_threshold_and_one_signer_twice_are_refused(release: Callable[..., Path]) -> None:
    v1 = Federation.load(release(1))
    v2 = release(2, signed_by=(A,))
    with pytest.raises(BelowThreshold, match=r"1 valid signature\(s\) .*2 needed") as info:
        verify_update(v1, v2, now=NOW)
    assert info.value.check == "FEDERATION_BELOW_THRESHOLD"
    envelope = read_envelope(envelope_path(v2))
    envelope.signatures.append(envelope.signatures[0])
    write_envelope(envelope, envelope_path(v2), as_json=True)
    with pytest.raises(BelowThreshold, match="1 valid"):
        verify_update(v1, v2, now=NOW)


def test_forged_signatures_count_for_nothing(release: Callable[..., Path]) -> None:
    v1 = Federation.load(release(1))
    v2 = release(2, signed_by=(A,))
    envelope = read_envelope(envelope_path(v2))
    message = pae(PAYLOAD_FEDERATION, v2.read_bytes())
    impostor = SigningKey.generate(B.key_id)  # claims B's id, holds another key
    stranger = SigningKey.generate("xx.nobody/key")
    envelope.signatures.extend(
        [
            pb.Signature(keyid=impostor.key_id, sig=impostor.sign(message)),
            pb.Signature(keyid=stranger.key_id, sig=stranger.sign(message)),
            pb.Signature(keyid=C.key_id, sig=C.sign(message + b"x")),  # C's key, other bytes
            pb.Signature(keyid=C.key_id, sig=b"\0" * 64),
        ]
    )
    write_envelope(envelope, envelope_path(v2), as_json=True)
    with pytest.raises(BelowThreshold, match=r"not counted: .*xx\.nobody/key") as info:
        verify_update(v1, v2, now=NOW)
    assert "1 valid" in info.value.message


def test_a_file_edited_after_signing_is_refused(release: Callable[..., Path]) -> None:
    v1 = Federation.load(release(1))
    v2 = release(2, signed_by=(A, B))
    v2.write_bytes(v2.read_bytes() + b"# one more line\n")
    with pytest.raises(EditedAfterSigning, match="differs from the bytes its envelope signs"):
        verify_update(v1, v2, now=NOW)
    # Whitespace counts: the signature is over the exact bytes, never over the parsed TOML.
    v2b = release(2, signed_by=(A, B))
    v2b.write_bytes(v2b.read_bytes().replace(b"version = 2", b"version =  2"))
    with pytest.raises(EditedAfterSigning):
        verify_update(v1, v2b, now=NOW)


def test_an_envelope_of_another_kind_is_refused(release: Callable[..., Path]) -> None:
    v1 = Federation.load(release(1))
    v2 = release(2, signed_by=(A, B))
    envelope = read_envelope(envelope_path(v2))
    envelope.payload_type = "application/vnd.comity.query+protobuf"
    write_envelope(envelope, envelope_path(v2), as_json=True)
    with pytest.raises(EditedAfterSigning, match="payload type"):
        verify_update(v1, v2, now=NOW)


@pytest.mark.parametrize(
    ("version", "name", "why"),
    [(1, "us-ca", "not newer .* rollback or a replay"), (3, "us-ca", "must be 2"), (2, "us-uk", "'us-uk'")],
    ids=["equal", "jump", "other-federation"],
)
def test_not_the_next_version_of_the_same_federation_is_refused(
    release: Callable[..., Path], version: int, name: str, why: str
) -> None:
    v1 = Federation.load(release(1))
    candidate = release(version, name=name, signed_by=(A, B))
    with pytest.raises(BadVersion, match=why):
        verify_update(v1, candidate, now=NOW)


def test_a_lower_version_is_refused(release: Callable[..., Path]) -> None:
    v5 = Federation.load(release(5))
    with pytest.raises(BadVersion, match="version 4, not newer than the trusted version 5"):
        verify_update(v5, release(4, signed_by=(A, B)), now=NOW)


def test_an_expired_version_is_refused_even_when_well_signed(release: Callable[..., Path]) -> None:
    v1 = Federation.load(release(1))
    v2 = release(2, expires="2026-12-01T12:00:00Z", signed_by=(A, B))
    with pytest.raises(Expired, match="expired at 2026-12-01T12:00:00"):
        verify_update(v1, v2, now=NOW)
    assert verify_update(v1, v2, now=datetime(2026, 12, 1, 11, 59, tzinfo=UTC)).version == 2
    with pytest.raises(Expired):
        verify_pinned(v2, file_sha256(v2.read_bytes()), now=NOW)


def test_rotated_signing_keys_decide_the_version_after(release: Callable[..., Path]) -> None:
    v1 = Federation.load(release(1))
    v2_path = release(2, keys=(D, E), threshold=2, signed_by=(A, B))
    v2 = verify_update(v1, v2_path, now=NOW)
    # Version 3 signed by the keys of version 1 only: they no longer decide.
    with pytest.raises(BelowThreshold, match="0 valid"):
        verify_update(v2, release(3, keys=(D, E), signed_by=(A, B)), now=NOW)
    assert verify_update(v2, release(3, keys=(D, E), signed_by=(D, E)), now=NOW).version == 3


def test_a_version_without_signing_keys_has_no_successor(
    release: Callable[..., Path], layout: FederationLayout
) -> None:
    unsigned = Federation.load(release(1, keys=()))
    with pytest.raises(UnsignedPredecessor, match="names no \\[signing\\] keys"):
        verify_update(unsigned, release(2, signed_by=(A, B)), now=NOW)
    format1 = Federation.load(layout.federation_file)
    with pytest.raises(UnsignedPredecessor):
        verify_update(format1, release(2, signed_by=(A, B)), now=NOW)


def test_signing_keys_are_validated_by_the_loader(release: Callable[..., Path]) -> None:
    for threshold, keys, field, why in [
        (3, (A, B), "signing.threshold", "at most the 2 signing keys"),
        (0, (A, B), "signing.threshold", "at least 1"),
        (1, (A, A), "signing.keys[1].id", "listed twice"),
        (1, (A, SigningKey(B.key_id + "x", A.private_key)), "signing.keys[1].key", "under another id"),
    ]:
        path = release(1, keys=keys, threshold=threshold)
        with pytest.raises(ConfigError, match=why) as info:
            Federation.load(path)
        assert info.value.field == field


def test_signing_replaces_a_signers_own_signature_and_drops_stale_ones(release: Callable[..., Path]) -> None:
    v2 = release(2, signed_by=(A, B, A))
    assert [s.keyid for s in read_envelope(envelope_path(v2)).signatures] == [B.key_id, A.key_id]
    v2.write_bytes(v2.read_bytes() + b"# amended\n")
    envelope, dropped = sign_federation_file(v2, C)
    assert dropped == 2
    assert [s.keyid for s in envelope.signatures] == [C.key_id]
    v2.write_text("name = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        sign_federation_file(v2, C)


# ---------------------------------------------------------------------- the commands


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def said(result: Result) -> str:
    return " ".join(result.output.split())


def test_sign_and_verify_commands(release: Callable[..., Path], tmp_path: Path) -> None:
    v1 = release(1)
    v2 = release(2)
    for key in (A, D, B):
        key.save(tmp_path / f"{key.key_id.replace('/', '_')}.key")
    a_file, b_file, d_file = (tmp_path / f"{k.key_id.replace('/', '_')}.key" for k in (A, B, D))
    result = run("sign", "--key", str(a_file), str(v2))
    assert result.exit_code == 0, result.output
    assert f"signed {v2} as {A.key_id}" in said(result)
    # D is not among the file's signing keys: its id must be given.
    result = run("sign", "--key", str(d_file), str(v2))
    assert result.exit_code == 1 and "--key-id" in said(result)
    pin = file_sha256(v1.read_bytes())
    assert run("verify", str(v2), "--trusted", str(v1), "--at", "2026-12-01T12:00:00Z").exit_code == 1
    assert run("sign", "--key", str(b_file), str(v2)).exit_code == 0
    result = run("verify", str(v2), "--trusted", str(v1), "--at", "2026-12-01T12:00:00Z")
    assert result.exit_code == 0, result.output
    assert "trusted: federation 'us-ca' version 2" in said(result)
    assert run("verify", str(v1), "--pin", pin).exit_code == 0
    result = run("verify", str(v1))
    assert result.exit_code == 1 and "pinned SHA-256" in said(result)
    result = run("verify", str(v2), "--trusted", str(v1), "--at", "2027-07-01")
    assert result.exit_code == 1 and "expired" in said(result)
    assert run("verify", str(v1), "--pin", pin, "--trusted", str(v1)).exit_code == 1


def test_every_trust_refusal_is_a_federation_trust_error() -> None:
    for cls in (
        NotPinned,
        PinMismatch,
        EditedAfterSigning,
        UnsignedPredecessor,
        BelowThreshold,
        BadVersion,
        Expired,
    ):
        assert issubclass(cls, FederationTrustError)
        assert cls.check.startswith("FEDERATION_")
