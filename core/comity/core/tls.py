"""gRPC credentials for Comity's TLS links, with certificates pinned by the federation file.

- gateway → node: mutual TLS. The node trusts *exactly* the gateway's client certificate
  (the one file whose SHA-256 the federation pins), so no other certificate, not even one
  from the same CA, completes a handshake. The gateway trusts exactly the node's pinned
  certificate the same way, so an impostor node is refused during the handshake. gRPC
  Python has no verification callback; pinning the trust anchor to the leaf itself is how
  the pin is enforced, and servers can check the peer again with
  :func:`peer_certificate_fingerprint` / :func:`check_peer_certificate`.
- investigator → gateway: TLS with server authentication; the investigator trusts the
  gateway's pinned certificate (or the gateway CA named in the federation).

Every certificate file is checked against its pinned fingerprint when the credentials are
built, so a swapped file stops start-up with an error naming it.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from comity.core.errors import ConfigError, Unauthenticated
from comity.core.federation import Federation, Node
from comity.core.pki import (
    certificate_pem,
    check_fingerprint,
    fingerprint,
    load_certificate,
    load_certificates,
    load_private_key,
)
from comity.core.witnesspolicy import WitnessIdentity

ServicerContext = grpc.ServicerContext | grpc.aio.ServicerContext[Any, Any]

__all__ = [
    "ServicerContext",
    "check_peer_certificate",
    "gateway_server_credentials",
    "investigator_channel_credentials",
    "key_pair",
    "node_channel_credentials",
    "node_server_credentials",
    "peer_certificate_fingerprint",
    "read_pinned_certificate",
    "witness_trust",
]


def read_pinned_certificate(path: Path, pins: str | Sequence[str], *, what: str) -> bytes:
    """The PEM of the certificate(s) at ``path``, after checking each is one the federation pins.

    While a certificate is being replaced the file holds both, old and new, and the
    federation pins both; a peer presenting either is accepted.
    """
    certs = load_certificates(path)
    for cert in certs:
        check_fingerprint(cert, pins, what=what)
    return b"".join(certificate_pem(c) for c in certs)


def key_pair(
    cert_path: Path, key_path: Path, passphrase: bytes | None
) -> tuple[bytes, bytes, x509.Certificate]:
    """(key PEM, certificate PEM, certificate): the key decrypted in memory, checked to match its
    certificate (``ConfigError`` naming both files otherwise)."""
    cert = load_certificate(cert_path)
    key = load_private_key(key_path, passphrase=passphrase)
    if cert.public_key() != key.public_key():
        raise ConfigError(f"TLS key {key_path} does not belong to certificate {cert_path}")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate_pem(cert), cert


def node_server_credentials(
    cert: Path,
    key: Path,
    *,
    federation: Federation,
    node_id: str | None = None,
    passphrase: bytes | None = None,
) -> grpc.ServerCredentials:
    """A node's server credentials: require a client certificate, and accept only the gateway's.

    With ``node_id``, the node's own certificate must also be the one the federation pins
    for that node (a misconfigured node then fails at start-up, not at the first call).
    """
    gateway = federation.gateway
    trusted = read_pinned_certificate(gateway.client_cert, gateway.client_pins, what="gateway.client_cert")
    key_pem, cert_pem, own = key_pair(cert, key, passphrase)
    if node_id is not None:
        check_fingerprint(own, federation.node(node_id).pins, what=f"{cert} (node {node_id})")
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=trusted, require_client_auth=True
    )


def node_channel_credentials(
    node: Node, client_cert: Path, client_key: Path, *, passphrase: bytes | None = None
) -> grpc.ChannelCredentials:
    """The gateway's credentials for one node: trust exactly its pinned certificate, show the client cert."""
    trusted = read_pinned_certificate(node.tls_cert, node.pins, what=f"node {node.id} tls_cert")
    key_pem, cert_pem, _ = key_pair(client_cert, client_key, passphrase)
    return grpc.ssl_channel_credentials(
        root_certificates=trusted, private_key=key_pem, certificate_chain=cert_pem
    )


def witness_trust(witness: WitnessIdentity) -> bytes:
    """The PEM the gateway trusts for an independent witness: its ``tls_cert``, each certificate pinned."""
    if witness.tls_cert is None:
        raise ConfigError(
            f"witness {witness.id!r} has no tls_cert, so the gateway cannot call it",
            field="witnesses.tls_cert",
            hint="add the witness's server certificate (tls_cert) and its pin (tls_cert_sha256)",
        )
    return read_pinned_certificate(
        witness.tls_cert, witness.tls_cert_pins, what=f"witness {witness.id} tls_cert"
    )


def gateway_server_credentials(
    cert: Path, key: Path, *, federation: Federation | None = None, passphrase: bytes | None = None
) -> grpc.ServerCredentials:
    """The gateway's server credentials for investigators (server authentication only).

    With ``federation``, the certificate must be the one it pins for the gateway.
    """
    key_pem, cert_pem, own = key_pair(cert, key, passphrase)
    if federation is not None:
        check_fingerprint(own, federation.gateway.server_pins, what=f"{cert} (gateway)")
    return grpc.ssl_server_credentials([(key_pem, cert_pem)])


def investigator_channel_credentials(federation: Federation) -> grpc.ChannelCredentials:
    """An investigator's credentials for the gateway: trust its pinned certificate (else its CA).

    The pinned certificate is preferred: it is exact. When the investigator's copy of the
    federation has no certificate file but names the gateway CA, that CA is trusted instead.
    """
    gateway = federation.gateway
    if gateway.tls_cert.exists() or gateway.ca_cert is None:
        trusted = read_pinned_certificate(gateway.tls_cert, gateway.server_pins, what="gateway.tls_cert")
    else:
        trusted = certificate_pem(load_certificate(gateway.ca_cert))
    return grpc.ssl_channel_credentials(root_certificates=trusted)


@functools.lru_cache(maxsize=64)
def _fingerprint_of_pem(pem: bytes) -> str:
    return fingerprint(x509.load_pem_x509_certificate(pem))


def peer_certificate_fingerprint(context: ServicerContext) -> str | None:
    """SHA-256 (lower-case hex) of the TLS peer's certificate, or None without one.

    ``context`` is a ``grpc.ServicerContext`` or ``grpc.aio.ServicerContext``; the
    certificate comes from its auth context (``x509_pem_cert``).
    """
    auth = context.auth_context() or {}
    certs = auth.get("x509_pem_cert") or []
    first = next(iter([certs] if isinstance(certs, bytes) else certs), None)
    if not first:
        return None
    try:
        return _fingerprint_of_pem(bytes(first))
    except ValueError:
        return None


def check_peer_certificate(
    context: ServicerContext, allowed: str | Iterable[str], *, what: str = "the caller"
) -> None:
    """Raise :class:`Unauthenticated` unless the peer's certificate has an ``allowed`` fingerprint."""
    actual = peer_certificate_fingerprint(context)
    if actual is None:
        raise Unauthenticated(f"{what} presented no TLS client certificate")
    pins = [allowed] if isinstance(allowed, str) else list(allowed)
    if not any(hmac.compare_digest(actual, p.lower()) for p in pins):
        raise Unauthenticated(f"{what}'s TLS certificate is not the one the federation pins")
