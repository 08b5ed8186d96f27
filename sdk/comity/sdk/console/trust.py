"""What the console trusts: the federation file, and nothing the log or the gateway says about itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from comity.audit.note import Ed25519Verifier
from comity.audit.quorum import Quorum
from comity.core.federation import Federation
from comity.sdk.receipts import log_verifier

__all__ = ["ConsoleTrust"]


@dataclass(frozen=True)
class ConsoleTrust:
    """The log's key, the witness quorum and who is in which country, from one federation file."""

    federation: Federation
    log_key: Ed25519Verifier
    quorum: Quorum
    country_of: dict[str, str]

    @classmethod
    def load(cls, path: Path) -> ConsoleTrust:
        """Load and check the federation file (signatures, expiry: as every component does)."""
        federation = Federation.load(path)
        country_of = {m.agency: m.country for m in federation.members}
        country_of |= {n.id: n.country for n in federation.nodes()}
        return cls(federation, log_verifier(federation), Quorum.of_federation(federation), country_of)
