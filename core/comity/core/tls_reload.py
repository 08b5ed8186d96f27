"""TLS certificates and trust that follow their files and the federation version in use, with no restart.

- :class:`ServerTls`: a server's own certificate and key, and (for a node or a witness) the
  gateway client certificates it trusts. gRPC asks it for its configuration before every TLS
  handshake (``grpc.dynamic_ssl_server_credentials``); it looks at the two files' size and
  modification time, reads them only when those changed, and from the next handshake serves a
  new pair that loads, whose key belongs to its certificate and, where the federation pins this
  server's certificate, that the version in use pins. A pair that fails any of those is refused
  with an ALERT naming the file and the reason, and the previous pair is still served (never a
  half-rotated one). A new federation version changes the trusted client certificates for the
  next handshake, and a pair refused for want of a pin is looked at again under it.
- :class:`GatewayClientTls`: the client certificate and key the gateway shows to the nodes and
  the independent witnesses, followed on disk the same way (:meth:`GatewayClientTls.check`); a
  changed pair gets new channels (see :mod:`comity.gateway.client_certificate`).

The key's passphrase is the one given at start: a rotated key must be encrypted with the same.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
from cryptography import x509

from comity.core.errors import ConfigError
from comity.core.federation import Federation, Node
from comity.core.federation_watch import FederationWatch
from comity.core.pki import check_fingerprint, fingerprint
from comity.core.tls import key_pair, read_pinned_certificate, witness_trust
from comity.core.witnesspolicy import WitnessIdentity

__all__ = ["GatewayClientTls", "KeyPair", "ServerTls", "gateway_client_trust", "read_key_pair"]

_log = logging.getLogger("comity.core.tls")

#: Size and modification time (ns) of the certificate file and of the key file.
Stamp = tuple[tuple[int, int] | None, tuple[int, int] | None]
#: The SHA-256 pins a federation version has for a server's certificate (empty: not pinned; None:
#: the version does not list the server, and the pins in use stay).
PinsOf = Callable[[Federation], Sequence[str] | None]


def _stamp(cert: Path, key: Path) -> Stamp:
    def one(path: Path) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    return one(cert), one(key)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its key, as read and checked, with the files' stamp when they were read."""

    key_pem: bytes
    cert_pem: bytes
    fingerprint: str
    stamp: Stamp


def read_key_pair(
    cert: Path, key: Path, *, passphrase: bytes | None, pins: Sequence[str], what: str
) -> KeyPair:
    """The pair at ``cert``/``key``: it must load, the key must belong to the certificate and, with
    ``pins``, the certificate must be one of them; raises :class:`ConfigError` saying which failed."""
    stamp = _stamp(cert, key)
    key_pem, cert_pem, own = key_pair(cert, key, passphrase)
    if pins:
        check_fingerprint(own, pins, what=what)
    return KeyPair(key_pem, cert_pem, fingerprint(own), stamp)


def gateway_client_trust(federation: Federation) -> bytes:
    """The gateway client certificate(s) a node or witness trusts under ``federation``: those of its
    ``gateway.client_cert`` file, each one it pins (``ConfigError`` otherwise).

    A pin with no certificate in the file is said in the log: a gateway showing that certificate
    is refused until the file holds it and a version is put in use again.
    """
    gateway = federation.gateway
    pem = read_pinned_certificate(gateway.client_cert, gateway.client_pins, what="gateway.client_cert")
    held = {fingerprint(c) for c in x509.load_pem_x509_certificates(pem)}
    for pin in gateway.client_pins:
        if pin.lower() not in held:
            _log.warning(
                "federation version %s pins %s… for gateway.client_cert, but %s holds no such certificate: "
                "a gateway showing it is refused (put every pinned certificate in that file)",
                federation.version,
                pin[:16],
                gateway.client_cert,
            )
    return pem


class ServerTls:
    """A server's own TLS pair and client trust, handed to gRPC before each handshake.

    ``pins_of(version)`` gives the pins of this server's certificate in a federation version
    (empty when it pins none); ``trust_of(version)``, for a server that requires client
    certificates, the PEM of those it trusts. Build with :meth:`node`, :meth:`gateway` or
    :meth:`witness`; a pair that does not hold at start raises :class:`ConfigError`, as before.
    """

    def __init__(
        self,
        cert: Path,
        key: Path,
        *,
        federation: Federation,
        pins_of: PinsOf,
        trust_of: Callable[[Federation], bytes] | None,
        passphrase: bytes | None,
        what: str,
    ) -> None:
        self._cert, self._key, self._passphrase, self._what = cert, key, passphrase, what
        self._pins_of, self._trust_of = pins_of, trust_of
        self._version = federation.version
        self._pins = tuple(pins_of(federation) or ())
        self._trust = trust_of(federation) if trust_of is not None else None
        self._pair = read_key_pair(cert, key, passphrase=passphrase, pins=self._pins, what=self._label())
        self._examined: Stamp | None = self._pair.stamp
        # Bumped whenever what a handshake should use changes; each credentials' fetcher compares.
        self._generation = 0
        self._lock = threading.Lock()

    @classmethod
    def node(
        cls, cert: Path, key: Path, *, federation: Federation, node_id: str, passphrase: bytes | None = None
    ) -> ServerTls:
        """A node's: its certificate pinned as ``node_id``'s, trusting the gateway's client certificate."""
        return cls(
            cert,
            key,
            federation=federation,
            pins_of=lambda f: next((n.pins for n in f.nodes() if n.id == node_id), None),
            trust_of=gateway_client_trust,
            passphrase=passphrase,
            what=f"node {node_id}",
        )

    @classmethod
    def witness(
        cls,
        cert: Path,
        key: Path,
        *,
        federation: Federation,
        witness_id: str,
        passphrase: bytes | None = None,
    ) -> ServerTls:
        """An independent witness's: its certificate pinned when the federation pins one, trusting the
        gateway's client certificate."""
        return cls(
            cert,
            key,
            federation=federation,
            pins_of=lambda f: next(
                (w.tls_cert_pins for w in f.witness_identities() if w.id == witness_id), None
            ),
            trust_of=gateway_client_trust,
            passphrase=passphrase,
            what=f"witness {witness_id}",
        )

    @classmethod
    def gateway(
        cls, cert: Path, key: Path, *, federation: Federation, passphrase: bytes | None = None
    ) -> ServerTls:
        """The gateway's for investigators: its certificate pinned as the gateway's, no client certificate."""
        return cls(
            cert,
            key,
            federation=federation,
            pins_of=lambda f: f.gateway.server_pins,
            trust_of=None,
            passphrase=passphrase,
            what="gateway",
        )

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate served from the next handshake on (as far as the files were read)."""
        return self._pair.fingerprint

    def _label(self) -> str:
        return f"{self._cert} ({self._what})"

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self._pair.key_pem, self._pair.cert_pem)], root_certificates=self._trust
        )

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials for one port that follow the files and the trust from the next handshake."""
        with self._lock:
            given = self._generation
            initial = self._configuration()

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            # gRPC calls this before each handshake (from its own thread); None keeps what it has.
            nonlocal given
            with self._lock:
                self._look_at_files()
                if given == self._generation:
                    return None
                given = self._generation
                return self._configuration()

        # grpc's stubs type the fetcher as never returning None; its documentation says None
        # means "no change", which is what keeps the handshakes cheap.
        fetcher = cast(Callable[[], grpc.ServerCertificateConfiguration], fetch)
        return grpc.dynamic_ssl_server_credentials(
            initial, fetcher, require_client_authentication=self._trust_of is not None
        )

    def _look_at_files(self) -> None:
        stamp = _stamp(self._cert, self._key)
        if stamp == self._examined:
            return
        self._examined = stamp
        try:
            pair = read_key_pair(
                self._cert, self._key, passphrase=self._passphrase, pins=self._pins, what=self._label()
            )
        except ConfigError as exc:
            _log.error(
                "ALERT: TLS certificate %s and key %s refused: %s; still serving certificate %s…",
                self._cert,
                self._key,
                _reason(exc, self._version),
                self._pair.fingerprint[:16],
            )
            return
        if pair.fingerprint != self._pair.fingerprint or pair.key_pem != self._pair.key_pem:
            _log.warning(
                "TLS certificate %s: now serving %s… (was %s…) from the next handshake",
                self._cert,
                pair.fingerprint[:16],
                self._pair.fingerprint[:16],
            )
            self._generation += 1
        self._pair = pair

    def prepared(self, federation: Federation) -> Callable[[], None]:
        """A :data:`~comity.core.federation_watch.Preparer`: the pins and trust of ``federation``,
        put in use for the next handshake (a trust that cannot be read refuses the version)."""
        listed = self._pins_of(federation)
        pins = self._pins if listed is None else tuple(listed)
        untrusted = ""
        try:
            trust = self._trust_of(federation) if self._trust_of is not None else None
        except ConfigError as exc:
            # The version still decides: refusing it would keep trusting the certificates it no
            # longer pins. Handshakes keep the trust in use, and each call is refused by the pins
            # the version names (no certificate shown can match one the file does not hold).
            trust, untrusted = self._trust, exc.message

        def swap() -> None:
            if untrusted:
                _log.error(
                    "ALERT: federation version %s: no gateway client certificate it pins can be read (%s): "
                    "every gateway call is refused until gateway.client_cert holds a pinned certificate "
                    "and a version is put in use again",
                    federation.version,
                    untrusted,
                )
            with self._lock:
                if trust != self._trust:
                    self._generation += 1
                self._version, self._pins, self._trust = federation.version, pins, trust
                if self._examined != self._pair.stamp:
                    self._examined = None  # the pair on disk was refused: it may be pinned now
                if pins and self._pair.fingerprint not in {p.lower() for p in pins}:
                    _log.error(
                        "ALERT: federation version %s does not pin certificate %s… that %s serves: its "
                        "clients refuse it; put the pinned certificate and its key in place",
                        federation.version,
                        self._pair.fingerprint[:16],
                        self._cert,
                    )

        return swap

    def follow(self, watch: FederationWatch) -> None:
        """Take each new federation version's pins and trust from ``watch``."""
        watch.prepare_with(self.prepared)


def _reason(exc: ConfigError, version: int | None) -> str:
    if "pinned" in exc.message or "fingerprint" in exc.message:
        return f"{exc.message} (federation version {version})"
    return exc.message


class GatewayClientTls:
    """The gateway's client certificate and key as on disk, for its channels to the nodes and the
    independent witnesses.

    Callable as the nodes' channel credentials (``self(node)``); :meth:`for_witness` gives an
    independent witness's. :meth:`check` reads the files
    again when their stamp changed (or, after a refusal, when another federation version is in
    use) and takes a pair that loads, matches and that the version in use (``current()``) pins
    as ``gateway.client_cert``; it refuses any other with an ALERT and keeps the previous pair.
    :attr:`identity` names the pair in use, so a channel built with another one is replaced.
    """

    def __init__(
        self, cert: Path, key: Path, *, current: Callable[[], Federation], passphrase: bytes | None = None
    ) -> None:
        self._cert, self._key, self._current, self._passphrase = cert, key, current, passphrase
        self._pair = self._read()
        self._examined: tuple[Stamp, int | None] = (self._pair.stamp, current().version)

    def _read(self) -> KeyPair:
        return read_key_pair(
            self._cert,
            self._key,
            passphrase=self._passphrase,
            pins=self._current().gateway.client_pins,
            what=f"{self._cert} (gateway.client_cert)",
        )

    @property
    def identity(self) -> str:
        """SHA-256 of the client certificate in use."""
        return self._pair.fingerprint

    def __call__(self, node: Node) -> grpc.ChannelCredentials:
        """Credentials for ``node``: trust exactly its pinned certificate, show the pair in use."""
        trusted = read_pinned_certificate(node.tls_cert, node.pins, what=f"node {node.id} tls_cert")
        return grpc.ssl_channel_credentials(
            root_certificates=trusted, private_key=self._pair.key_pem, certificate_chain=self._pair.cert_pem
        )

    def for_witness(self, witness: WitnessIdentity) -> tuple[grpc.ChannelCredentials, str]:
        """Credentials for an independent witness (trusting exactly its pinned certificate, showing
        the pair in use) and the SHA-256 of the client certificate they show; raises
        :class:`ConfigError` when its ``tls_cert`` is missing or not pinned. Reads its file."""
        pair = self._pair  # one pair for both answers, whatever check() does meanwhile
        credentials = grpc.ssl_channel_credentials(
            root_certificates=witness_trust(witness),
            private_key=pair.key_pem,
            certificate_chain=pair.cert_pem,
        )
        return credentials, pair.fingerprint

    def check(self) -> bool:
        """Look at the files once; whether another pair is now in use."""
        version = self._current().version
        looked = (_stamp(self._cert, self._key), version)
        if looked == self._examined:
            return False
        self._examined = looked
        try:
            pair = self._read()
        except ConfigError as exc:
            _log.error(
                "ALERT: gateway client certificate %s and key %s refused: %s; new channels still show "
                "certificate %s…",
                self._cert,
                self._key,
                _reason(exc, version),
                self._pair.fingerprint[:16],
            )
            return False
        changed = pair.fingerprint != self._pair.fingerprint or pair.key_pem != self._pair.key_pem
        self._pair = pair
        if changed:
            _log.warning(
                "gateway client certificate %s: new channels show %s…", self._cert, pair.fingerprint[:16]
            )
        return changed
