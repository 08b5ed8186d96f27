"""An investigator's profile: who they are and which gateway they use, in one TOML file.

Example::

    [investigator]
    id = "us.fbi/agent-1"
    agency = "us.fbi"
    key = "keys/us.fbi-agent-1.pem"      # Ed25519; passphrase from COMITY_KEY_PASSPHRASE
    token_file = "tokens/us.fbi.jwt"      # or the token itself in COMITY_TOKEN

    [gateway]
    address = "127.0.0.1:50051"
    ca = "pki/gateway-ca.crt"             # the CA that issued the gateway's certificate
    federation = "federation.toml"        # whose node keys sign answers
    timeout_seconds = 30
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from comity.core.configfile import load_toml
from comity.core.errors import ConfigError
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.sdk.client import AsyncClient, Client, Identity
from comity.sdk.receipts import log_verifier

__all__ = ["Profile", "load_profile"]


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

    def client(self) -> Client:
        """A blocking client for this profile."""
        federation = Federation.load(self.federation)
        return Client(
            self.address,
            identity=self.identity(),
            node_keys=federation.node_keys(),
            log_key=log_verifier(federation),
            root_certificates=self._root(),
            timeout=self.timeout,
            federation=federation,
        )

    def async_client(self) -> AsyncClient:
        """An asynchronous client for this profile."""
        federation = Federation.load(self.federation)
        return AsyncClient(
            self.address,
            identity=self.identity(),
            node_keys=federation.node_keys(),
            log_key=log_verifier(federation),
            root_certificates=self._root(),
            timeout=self.timeout,
            federation=federation,
        )


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
    )
    for section in (inv, gw, root):
        section.done()
    return profile
