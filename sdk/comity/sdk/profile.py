"""An investigator's profile: who they are and which gateway they use, in one TOML file.

Example::

    [investigator]
    id = "us.fbi/agent-1"
    agency = "us.fbi"
    key = "keys/us.fbi-agent-1.pem"      # Ed25519; passphrase from COMITY_KEY_PASSPHRASE
    token_file = "tokens/us.fbi.jwt"      # or the token itself in COMITY_TOKEN

    [gateway]
    address = "127.0.0.1:50051"
    replica_addresses = ["127.0.0.1:50052"]   # optional: further replicas, tried in this order
    ca = "pki/gateway-ca.crt"             # the CA that issued the gateway's certificate
    federation = "federation.toml"        # whose node keys sign answers
    federation_state = "state/federation.toml"  # optional: the version this profile trusts, kept
    federation_sha256 = "9f2c…"           # optional: the first version's SHA-256, agreed out of band
    timeout_seconds = 30                  # each call's deadline, resubmissions included
    resubmissions = 3                     # at most this many further attempts through other replicas

When ``address`` is one of the federation file's gateway endpoints (``[gateway] endpoint`` and
``replica_endpoints``), the client uses the file's other endpoints too, after
``replica_addresses``: a profile written for a federation follows its replicas. An address the
file does not list (a load balancer in front of the replicas) is used alone, with the profile's
own ``replica_addresses``.

With ``federation_state``, the client keeps the federation file version it trusts in that file
and takes a changed file only as its next version signed by the kept version's ``[signing]``
threshold, or as the version ``federation_sha256`` names
(:func:`comity.core.federation_chain.follow`); the first use without a pin takes the file as it
is, with a warning in the ``comity.sdk`` log. With ``federation_sha256`` alone, the file must be
that version. With neither, the file is taken as it is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

from comity.audit.note import Ed25519Verifier
from comity.core.configfile import load_toml
from comity.core.errors import ConfigError
from comity.core.federation import Federation
from comity.core.federation_chain import Change, follow
from comity.core.federation_sign import verify_pinned
from comity.core.keys import SigningKey, VerifyingKey
from comity.sdk.client import AsyncClient, Client, Identity
from comity.sdk.failover import Failover
from comity.sdk.receipts import log_verifier

__all__ = ["Profile", "load_profile"]

_log = logging.getLogger("comity.sdk")


@dataclass(frozen=True)
class Profile:
    """A loaded profile; :meth:`client` and :meth:`async_client` connect with it."""

    investigator: str
    agency: str
    key_path: Path
    token_file: Path | None
    address: str
    ca: Path
    federation: Path
    timeout: float
    replica_addresses: tuple[str, ...] = ()
    resubmissions: int = 3
    federation_state: Path | None = None
    federation_sha256: str = ""

    def trusted_federation(self) -> Federation:
        """The federation file as this profile trusts it (see the module's docstring); raises
        :class:`~comity.core.federation_sign.FederationTrustError` naming the rule a file breaks."""
        now = datetime.now(UTC)
        if self.federation_state is None:
            if self.federation_sha256:
                return verify_pinned(self.federation, self.federation_sha256, now=now)
            return Federation.load(self.federation)
        try:
            held = self.federation_state.read_bytes() if self.federation_state.exists() else None
        except OSError as exc:
            raise ConfigError(
                f"cannot read the kept federation version {self.federation_state}: {exc.strerror}",
                field="gateway.federation_state",
            ) from None
        followed = follow(self.federation, held, pin=self.federation_sha256, now=now)
        if followed.change is Change.FIRST_USE:
            _log.warning(
                "trusting federation %r version %s (%s, sha256 %s) on first use: nothing checked it; set "
                "gateway.federation_sha256 to the digest its operators published",
                followed.federation.name,
                followed.federation.version,
                self.federation,
                followed.sha256,
            )
        if followed.data != held:
            self.federation_state.parent.mkdir(parents=True, exist_ok=True)
            staged = self.federation_state.with_name(self.federation_state.name + ".new")
            staged.write_bytes(followed.data)
            os.replace(staged, self.federation_state)
        return followed.federation

    def token(self) -> str:
        """The bearer token: COMITY_TOKEN wins over the token file; read on every call so it can rotate."""
        env = os.environ.get("COMITY_TOKEN")
        if env:
            return env.strip()
        if self.token_file is None:
            raise ConfigError("no token: set COMITY_TOKEN or investigator.token_file")
        try:
            return self.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read token file {self.token_file}: {exc.strerror}") from None

    def identity(self) -> Identity:
        """The signing identity this profile names."""
        secret = os.environ.get("COMITY_KEY_PASSPHRASE")
        key = SigningKey.load(
            self.key_path, key_id=self.investigator, passphrase=secret.encode() if secret else None
        )
        return Identity(investigator=self.investigator, agency=self.agency, signing_key=key, token=self.token)

    def _root(self) -> bytes:
        try:
            return self.ca.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read gateway CA {self.ca}: {exc.strerror}", field="gateway.ca"
            ) from None

    def addresses(self, federation: Federation) -> tuple[str, ...]:
        """The gateway addresses to use, in order: ``address``, ``replica_addresses``, then, when
        ``address`` is one of ``federation``'s gateway endpoints, its other endpoints."""
        listed = federation.gateway.endpoints
        extra = listed if self.address in listed else ()
        return tuple(dict.fromkeys((self.address, *self.replica_addresses, *extra)))

    def client(self) -> Client:
        """A blocking client for this profile."""
        federation = self.trusted_federation()
        return Client(self.addresses(federation), **self._settings(federation))

    def async_client(self) -> AsyncClient:
        """An asynchronous client for this profile."""
        federation = self.trusted_federation()
        return AsyncClient(self.addresses(federation), **self._settings(federation))

    def _settings(self, federation: Federation) -> _ClientSettings:
        return {
            "identity": self.identity(),
            "node_keys": federation.node_keys(),
            "log_key": log_verifier(federation),
            "root_certificates": self._root(),
            "timeout": self.timeout,
            "federation": federation,
            "failover": Failover(resubmissions=self.resubmissions),
        }


class _ClientSettings(TypedDict):
    identity: Identity
    node_keys: Mapping[str, VerifyingKey]
    log_key: Ed25519Verifier
    root_certificates: bytes
    timeout: float
    federation: Federation
    failover: Failover


def load_profile(path: Path) -> Profile:
    """Read and validate a profile; ConfigError names the bad field."""
    root = load_toml(path)
    inv = root.table("investigator")
    gw = root.table("gateway")
    profile = Profile(
        investigator=inv.text("id"),
        agency=inv.text("agency"),
        key_path=inv.path("key"),
        token_file=inv.optional_path("token_file"),
        address=gw.text("address"),
        ca=gw.path("ca"),
        federation=gw.path("federation"),
        timeout=gw.number("timeout_seconds", 30.0, minimum=0.1),
        replica_addresses=gw.texts("replica_addresses"),
        resubmissions=gw.integer("resubmissions", 3, minimum=0),
        federation_state=gw.optional_path("federation_state"),
        federation_sha256=gw.text("federation_sha256", ""),
    )
    for section in (inv, gw, root):
        section.done()
    return profile
