"""Certificates (usages, names, fingerprints) and the `comity pki` / `comity keys` commands."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner, Result

from comity.core.errors import ConfigError
from comity.core.keys import SigningKey, public_key_from_text
from comity.core.pki import (
    CertificateAuthority,
    IssuedCertificate,
    check_fingerprint,
    fingerprint,
    load_certificate,
    load_private_key,
)
from comity.sdk.cli import keys_cmd, pki_cmd

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def said(result: Result) -> str:
    """What a command printed, with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("Comity US CA", country="US", now=NOW)


def test_the_ca_may_sign_leaves_only(ca: CertificateAuthority) -> None:
    constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert ca.certificate.issuer == ca.certificate.subject


def test_server_certificates_carry_names_and_server_usage_only(ca: CertificateAuthority) -> None:
    cert = ca.issue_server("us-node", names=["127.0.0.1", "localhost"], now=NOW).certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.issuer == ca.certificate.subject
    cert.verify_directly_issued_by(ca.certificate)


def test_client_certificates_have_client_usage_only(ca: CertificateAuthority) -> None:
    cert = ca.issue_client("gateway", now=NOW).certificate
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_leaves_never_outlive_their_ca(ca: CertificateAuthority) -> None:
    cert = ca.issue_client("gateway", now=NOW, valid_for=timedelta(days=100_000)).certificate
    assert cert.not_valid_after_utc == ca.certificate.not_valid_after_utc


def test_a_server_certificate_needs_a_name(ca: CertificateAuthority) -> None:
    with pytest.raises(ConfigError, match="at least one"):
        ca.issue_server("x", names=[], now=NOW)


def test_fingerprints_are_sha256_of_der_and_compare_in_any_spelling(ca: CertificateAuthority) -> None:
    cert = ca.certificate
    fp = fingerprint(cert)
    assert len(fp) == 64
    check_fingerprint(cert, fp, what="ca")
    check_fingerprint(cert, "SHA256:" + ":".join(fp[i : i + 2] for i in range(0, 64, 2)).upper(), what="ca")
    with pytest.raises(ConfigError, match="pins"):
        check_fingerprint(cert, "0" * 64, what="ca")


def test_saved_certificates_reload_with_private_keys_0600(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = ca.issue_server("n", names=["localhost"], now=NOW)
    issued.save(tmp_path / "n.crt", tmp_path / "n.key", passphrase=b"pw")
    assert stat.S_IMODE((tmp_path / "n.key").stat().st_mode) == 0o600
    again = IssuedCertificate.load(tmp_path / "n.crt", tmp_path / "n.key", passphrase=b"pw")
    assert again.fingerprint == issued.fingerprint
    with pytest.raises(ConfigError, match="encrypted"):
        load_private_key(tmp_path / "n.key")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_certificate(tmp_path / "absent.crt")
    (tmp_path / "junk.crt").write_text("junk")
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        load_certificate(tmp_path / "junk.crt")


# ---------------------------------------------------------------------- commands


def test_pki_commands_make_a_ca_and_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("CA_PASS", "secret")
    made = runner.invoke(
        pki_cmd.app,
        ["ca", "Comity CA CA", "--country", "CA", "--out-dir", str(tmp_path), "--passphrase-env", "CA_PASS"],
    )
    assert made.exit_code == 0, made.output
    common = ["--ca-dir", str(tmp_path), "--out-dir", str(tmp_path), "--passphrase-env", "CA_PASS"]
    server = runner.invoke(
        pki_cmd.app, ["server", "ca-node", "--san", "127.0.0.1", "--san", "localhost", *common]
    )
    assert server.exit_code == 0, server.output
    client = runner.invoke(pki_cmd.app, ["client", "gateway", *common])
    assert client.exit_code == 0, client.output
    cert = load_certificate(tmp_path / "ca-node.crt")
    cert.verify_directly_issued_by(load_certificate(tmp_path / "ca.crt"))
    shown = runner.invoke(pki_cmd.app, ["fingerprint", str(tmp_path / "ca-node.crt")])
    assert shown.output.strip() == fingerprint(cert)
    again = runner.invoke(pki_cmd.app, ["client", "gateway", *common])
    assert again.exit_code == 1
    assert "already exists" in said(again)


def test_pki_without_the_passphrase_variable(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        pki_cmd.app, ["ca", "X", "--out-dir", str(tmp_path), "--passphrase-env", "NO_SUCH_VAR_X"]
    )
    assert result.exit_code == 1
    assert "NO_SUCH_VAR_X" in said(result)


def test_keys_new_writes_a_private_key_and_prints_the_public_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEY_PASS", "pw")
    out = tmp_path / "agent.key"
    runner = CliRunner()
    result = runner.invoke(
        keys_cmd.app, ["new", "us.fbi/agent-2", "--out", str(out), "--passphrase-env", "KEY_PASS"]
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = SigningKey.load(out, key_id="us.fbi/agent-2", passphrase=b"pw")
    public = key.verifying_key.to_text()
    assert public in said(result)
    public_key_from_text(public)
    shown = runner.invoke(keys_cmd.app, ["show", str(out), "--passphrase-env", "KEY_PASS"])
    assert public in said(shown)
    refused = runner.invoke(keys_cmd.app, ["new", "us.fbi/agent-2", "--out", str(out)])
    assert refused.exit_code == 1
    assert "already exists" in said(refused)


def test_keys_show_of_an_encrypted_key_without_passphrase(tmp_path: Path) -> None:
    SigningKey.generate("k").save(tmp_path / "k.key", passphrase=b"pw")
    result = CliRunner().invoke(keys_cmd.app, ["show", str(tmp_path / "k.key")])
    assert result.exit_code == 1
    assert "encrypted" in said(result)
