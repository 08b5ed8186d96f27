"""What the console trusts: the federation file, and nothing the log or the gateway says about itself."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from comity.audit.note import Ed25519Verifier
from comity.audit.quorum import Quorum
from comity.core.errors import ComityError
from comity.core.federation import Federation
from comity.core.federation_chain import Change, Followed, follow
from comity.core.federation_watch import file_stamp
from comity.sdk.receipts import log_verifier

__all__ = ["ConsoleTrust", "TrustFollower"]

_log = logging.getLogger("comity.sdk.console")


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


class TrustFollower:
    """The federation file while the console runs: a changed file (or envelope) is taken as
    :meth:`ConsoleTrust.load` takes it against the version the mirror keeps, kept in the mirror,
    and handed to each listener; one that is refused leaves the version in use, with an ALERT in
    the log and :attr:`refused` saying why."""

    def __init__(self, path: Path, trust: ConsoleTrust, *, keep: Callable[[bytes], None]) -> None:
        if trust.followed is None:
            raise ValueError("a TrustFollower starts from a trust taken by ConsoleTrust.load")
        self.path = path
        self.current = trust
        #: Why the last changed file was refused (None once a version is taken).
        self.refused: str | None = None
        self._keep = keep
        self._stamp = file_stamp(path)
        self._listeners: list[Callable[[ConsoleTrust], None]] = []

    def on_change(self, listener: Callable[[ConsoleTrust], None]) -> None:
        """Call ``listener`` with each version taken (on the thread that calls :meth:`check`)."""
        self._listeners.append(listener)

    def check(self) -> bool:
        """Look at the file once; returns whether a new version was taken."""
        stamp = file_stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            # Against the version in use, never a re-read of what was kept: a next version follows it.
            assert self.current.followed is not None
            new = ConsoleTrust.load(self.path, held=self.current.followed.data)
        except ComityError as exc:
            self.refused = f"{getattr(exc, 'check', '') or type(exc).__name__}: {exc.message}"
            _log.error(
                "ALERT: federation file %s refused (%s); still verifying under version %s",
                self.path,
                self.refused,
                self.current.federation.version,
            )
            return False
        assert new.followed is not None
        self.refused = None
        if new.followed.change is Change.HELD:
            return False
        self._keep(new.followed.data)
        self.current = new
        for listener in self._listeners:
            listener(new)
        _log.warning("federation file %s: now version %s", self.path, new.federation.version)
        return True
