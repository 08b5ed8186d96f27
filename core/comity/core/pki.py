"""X.509 for mutual TLS between the gateway and the nodes: CAs, server and client certificates.

Keys are ECDSA P-256 (fast to generate and to handshake with). Each country runs a small
certificate authority; its certificates carry the usages they are for (``serverAuth`` or
``clientAuth``), so a client certificate cannot pass for a server. The federation file pins
certificates by the SHA-256 fingerprint of their DER encoding (:func:`fingerprint`).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from comity.core.errors import ConfigError

__all__ = [
    "CertificateAuthority",
    "IssuedCertificate",
    "certificate_pem",
    "check_fingerprint",
    "fingerprint",
    "load_certificate",
    "load_certificates",
    "load_private_key",
    "write_private_key",
]

CA_VALIDITY = timedelta(days=3650)
LEAF_VALIDITY = timedelta(days=397)
# Certificates are back-dated a little so that a peer whose clock is slightly behind accepts them.
_BACKDATE = timedelta(minutes=5)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER encoding, lower-case hex (how the federation pins certificates)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def check_fingerprint(cert: x509.Certificate, expected: str | Sequence[str], *, what: str) -> None:
    """Raise :class:`ConfigError` unless ``cert``'s fingerprint is ``expected`` (or one of them).

    Fingerprints compare in constant time and in any spelling (``sha256:``, colons, case).
    """
    actual = fingerprint(cert)
    pins = [expected] if isinstance(expected, str) else list(expected)
    if not any(hmac.compare_digest(actual, _normalise_fingerprint(p)) for p in pins):
        shown = ", ".join(f"sha256:{p}" for p in pins)
        raise ConfigError(
            f"{what}: certificate fingerprint is sha256:{actual}, the federation pins {shown}",
            hint="a certificate was replaced: re-issue it or update the federation file",
        )


def _normalise_fingerprint(text: str) -> str:
    text = text.strip().lower()
    text = text.removeprefix("sha256:")
    return text.replace(":", "")


def certificate_pem(cert: x509.Certificate) -> bytes:
    """The certificate in PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certificate(path: Path) -> x509.Certificate:
    """Read one PEM certificate; raises :class:`ConfigError` naming the file when it cannot."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read certificate {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM certificate: {exc}") from None


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Read every PEM certificate in ``path`` (a bundle while a certificate is being replaced)."""
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read certificate {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM certificate: {exc}") from None
    return certs


def load_private_key(path: Path, *, passphrase: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Read a PEM ECDSA private key (a TLS key)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=passphrase)
    except OSError as exc:
        raise ConfigError(f"cannot read TLS key {path}: {exc.strerror}") from None
    except TypeError:
        raise ConfigError(f"TLS key {path} is encrypted", hint="give its passphrase") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"TLS key {path} holds a {type(key).__name__}, not an ECDSA key")
    return key


def write_private_key(
    key: ec.EllipticCurvePrivateKey, path: Path, *, passphrase: bytes | None = None
) -> None:
    """Write ``key`` as PKCS#8 PEM, created with mode 0600 so it is never readable by others."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A certificate with its private key."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate's DER, hex."""
        return fingerprint(self.certificate)

    @property
    def certificate_pem(self) -> bytes:
        """The certificate in PEM."""
        return certificate_pem(self.certificate)

    @property
    def private_key_pem(self) -> bytes:
        """The private key in unencrypted PKCS#8 PEM (for gRPC credentials; keep it in memory)."""
        return _key_pem(self.private_key)

    def save(self, cert_path: Path, key_path: Path, *, passphrase: bytes | None = None) -> None:
        """Write the certificate (PEM) and the key (PEM, mode 0600)."""
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(self.certificate_pem)
        write_private_key(self.private_key, key_path, passphrase=passphrase)

    @classmethod
    def load(cls, cert_path: Path, key_path: Path, *, passphrase: bytes | None = None) -> IssuedCertificate:
        """Read a certificate and its key written by :meth:`save`."""
        return cls(load_certificate(cert_path), load_private_key(key_path, passphrase=passphrase))


def _name(common_name: str, country: str, organisation: str) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    if country:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    return x509.Name(attrs)


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A country's certificate authority: a self-signed CA certificate and its key."""

    issued: IssuedCertificate

    @property
    def certificate(self) -> x509.Certificate:
        """The CA certificate (what peers trust)."""
        return self.issued.certificate

    @classmethod
    def create(
        cls, common_name: str, *, country: str = "", organisation: str = "Comity", now: datetime
    ) -> CertificateAuthority:
        """A new CA that may sign leaf certificates only (path length 0)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name, country, organisation)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(IssuedCertificate(cert, key))

    @classmethod
    def load(
        cls, cert_path: Path, key_path: Path, *, passphrase: bytes | None = None
    ) -> CertificateAuthority:
        """Read a CA written by ``issued.save``."""
        return cls(IssuedCertificate.load(cert_path, key_path, passphrase=passphrase))

    def issue_server(
        self, common_name: str, *, names: Sequence[str], now: datetime, valid_for: timedelta = LEAF_VALIDITY
    ) -> IssuedCertificate:
        """A TLS server certificate for ``names`` (DNS names or IP addresses, put in the SAN)."""
        if not names:
            raise ConfigError("a server certificate needs at least one DNS name or IP address")
        return self._issue(common_name, ExtendedKeyUsageOID.SERVER_AUTH, names, now, valid_for)

    def issue_client(
        self, common_name: str, *, now: datetime, valid_for: timedelta = LEAF_VALIDITY
    ) -> IssuedCertificate:
        """A TLS client certificate naming ``common_name`` (e.g. the gateway's id)."""
        return self._issue(common_name, ExtendedKeyUsageOID.CLIENT_AUTH, (), now, valid_for)

    def _issue(
        self,
        common_name: str,
        usage: x509.ObjectIdentifier,
        names: Sequence[str],
        now: datetime,
        valid_for: timedelta,
    ) -> IssuedCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = self.issued.certificate
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, "", "Comity"))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(min(now + valid_for, ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.issued.private_key.public_key()),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(_san(names), critical=False)
        cert = builder.sign(self.issued.private_key, hashes.SHA256())
        return IssuedCertificate(cert, key)
