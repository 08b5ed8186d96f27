"""What the console trusts: the federation file, and nothing the log or the gateway says about itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from comity.audit.note import Ed25519Verifier
from comity.audit.quorum import Quorum
from comity.core.federation import Federation
from comity.core.federation_chain import Followed, follow
from comity.sdk.receipts import log_verifier

__all__ = ["ConsoleTrust"]


@dataclass(frozen=True)
class ConsoleTrust:
    """The log's key, the witness quorum and who is in which country, from one federation file."""

    federation: Federation
    log_key: Ed25519Verifier
    quorum: Quorum
    country_of: dict[str, str]

    #: How the file was taken (None when built from a file loaded as it is).
    followed: Followed | None = None

    @classmethod
    def load(
        cls, path: Path, *, held: bytes | None = None, pin: str = "", now: datetime | None = None
    ) -> ConsoleTrust:
        """The federation file to verify with, taken only as the version ``held`` before, its
        signed next version, or (nothing held) the version ``pin`` names, else the file as it is
        on first use (:func:`comity.core.federation_chain.follow`; check ``followed.change``)."""
        followed = follow(path, held, pin=pin, now=now or datetime.now(UTC))
        return cls.of(followed.federation, followed)

    @classmethod
    def of(cls, federation: Federation, followed: Followed | None = None) -> ConsoleTrust:
        """What ``federation`` says the console trusts."""
        country_of = {m.agency: m.country for m in federation.members}
        country_of |= {n.id: n.country for n in federation.nodes()}
        return cls(
            federation, log_verifier(federation), Quorum.of_federation(federation), country_of, followed
        )
