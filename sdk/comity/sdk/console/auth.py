"""Sign-in for legal officers: the officer's own token, verified against the federation's identity providers.

The console keeps no passwords. An officer signs in with the bearer token their agency's
identity provider issued them (the token ``comity audit verify --token-file`` uses): the console
runs every check the gateway runs on it (:meth:`~comity.core.tokens.TokenVerifier.verify_legal_officer`:
signature by a key the federation file lists for that issuer, audience, times, a subject
registered as a legal officer of the issuer's agency). An investigator's token is refused, and
so is an officer of another country than the one the console's mirror is kept for.

A session lives in memory until the token expires or ``max_age`` passes, whichever is first.
Sessions do not survive a restart of the console: a restart signs everyone out (nothing about a
session is written to disk). Failed sign-ins are counted per client address
(:class:`SignInLimit`): past five in fifteen minutes, that address is refused until the oldest
ages out. Its cookie is random (256 bits), ``HttpOnly``, ``SameSite=Strict``
and ``Secure`` when the console serves TLS. Every form that posts carries a CSRF token: the
sign-in form a double-submit token (cookie and field must match), the others the session's own.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from comity.core.errors import ComityError, PermissionDenied
from comity.core.federation import Federation
from comity.core.tokens import TokenVerifier, VerifiedOfficer

__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "Session", "Sessions", "SignInLimit"]

SESSION_COOKIE = "comity_console_session"
CSRF_COOKIE = "comity_console_csrf"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in officer."""

    officer: VerifiedOfficer
    csrf: str
    expires_at: datetime


class Sessions:
    """Verifies tokens and keeps sessions (in memory, pruned as they expire)."""

    def __init__(
        self,
        federation: Federation,
        *,
        audience: str,
        max_age: timedelta = timedelta(hours=8),
        country: str | None = None,
    ) -> None:
        self._audience = audience
        self._tokens = TokenVerifier(federation, audience=audience)
        #: Only this country's officers may sign in (None: any officer's).
        self.country = country
        self._max_age = max_age
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def use_federation(self, federation: Federation) -> int:
        """Check sign-ins under ``federation`` from now on, and end every session whose officer it
        no longer lists as a legal officer of the same issuer; returns how many were ended."""
        tokens = TokenVerifier(federation, audience=self._audience)

        def still_listed(session: Session) -> bool:
            try:
                officer = federation.legal_officer(session.officer.subject)
                federation.issuer(session.officer.issuer)
            except ComityError:
                return False
            return officer.country == session.officer.country

        with self._lock:
            self._tokens = tokens
            kept = {k: s for k, s in self._sessions.items() if still_listed(s)}
            ended = len(self._sessions) - len(kept)
            self._sessions = kept
        return ended

    def sign_in(self, token: str, *, now: datetime | None = None) -> tuple[str, Session]:
        """A new session for the officer ``token`` names; raises the token's :class:`TokenError`."""
        now = now or datetime.now(UTC)
        officer = self._tokens.verify_legal_officer(token.strip(), now=now)
        if self.country is not None and officer.country != self.country:
            raise PermissionDenied(
                f"this console keeps what {self.country}'s legal officers may read; "
                f"{officer.subject} is an officer of {officer.country}",
                hint=f"run a console of your own with a {officer.country} officer's token",
            )
        session = Session(officer, secrets.token_urlsafe(32), min(officer.expires_at, now + self._max_age))
        key = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires_at > now}
            self._sessions[key] = session
        return key, session

    def get(self, key: str | None, *, now: datetime | None = None) -> Session | None:
        """The live session of cookie value ``key``."""
        if not key:
            return None
        now = now or datetime.now(UTC)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and session.expires_at <= now:
                del self._sessions[key]
                return None
        return session

    def sign_out(self, key: str | None) -> None:
        """End a session."""
        with self._lock:
            self._sessions.pop(key or "", None)


class SignInLimit:
    """Failed sign-ins per client address: past ``attempts`` in ``window``, refused until one ages out.

    Kept in memory, like the sessions. Only refused tokens count (not a stale form), and a
    successful sign-in clears the address's count. At most ``max_clients`` addresses are kept;
    past that, the one with the oldest failure is forgotten first.
    """

    def __init__(
        self, *, attempts: int = 5, window: timedelta = timedelta(minutes=15), max_clients: int = 10_000
    ) -> None:
        self.attempts = attempts
        self.window = window
        self._max_clients = max_clients
        self._failures: dict[str, list[datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: datetime) -> list[datetime]:
        kept = [t for t in self._failures.get(client, []) if t > now - self.window]
        if kept:
            self._failures[client] = kept
        else:
            self._failures.pop(client, None)
        return kept

    def refused_until(self, client: str, *, now: datetime | None = None) -> datetime | None:
        """When ``client`` may try again, if it has used up its attempts; else None."""
        now = now or datetime.now(UTC)
        with self._lock:
            recent = self._recent(client, now)
            if len(recent) < self.attempts:
                return None
            return recent[-self.attempts] + self.window

    def failed(self, client: str, *, now: datetime | None = None) -> int:
        """Count a refused token; returns the failures within the window."""
        now = now or datetime.now(UTC)
        with self._lock:
            recent = self._recent(client, now)
            recent.append(now)
            self._failures[client] = recent
            if len(self._failures) > self._max_clients:
                oldest = min(self._failures, key=lambda c: self._failures[c][-1])
                del self._failures[oldest]
            return len(recent)

    def succeeded(self, client: str) -> None:
        """A valid sign-in: forget the address's failures."""
        with self._lock:
            self._failures.pop(client, None)


def same_token(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two CSRF tokens (both present)."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
