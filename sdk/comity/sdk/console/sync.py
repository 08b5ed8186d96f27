"""The console's background verification: sync rounds and mirror checks on a timer, off every request.

:class:`BackgroundSync` runs :class:`~comity.sdk.console.verifier.MirrorVerifier` in a thread of
its own and publishes a :class:`SyncStatus` that pages only read. A verification failure is
kept (the mirror stops growing) until a later round verifies again; a source that cannot be
reached, or a token that expired, stops syncing with a sentence that says why, and the next
round tries again (with a fresh token, when :class:`OfficerToken` can get one).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import jwt

from comity.audit.errors import LogVerificationError
from comity.core.errors import ComityError, Unauthenticated
from comity.sdk.console.verifier import MirrorVerifier

__all__ = ["BackgroundSync", "OfficerToken", "SyncStatus", "TokenUnavailable"]

_log = logging.getLogger("comity.console")
# A token this close to expiry is renewed before a round rather than failing in the middle of one.
_MARGIN = 60


class TokenUnavailable(Unauthenticated):
    """No valid legal officer's token could be had: the message says where it was looked for."""


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """What the pages say about verification (all times UTC)."""

    verified_size: int = 0
    verified_at: datetime | None = None
    witnesses: tuple[str, ...] = ()
    attempted_at: datetime | None = None
    mirror_checked_at: datetime | None = None
    #: A verification failure: what failed, and the entry it located (if any).
    failure: str | None = None
    failure_entry: int | None = None
    failed_at: datetime | None = None
    #: Why syncing stopped (source unreachable, token expired), when it did.
    stopped: str | None = None
    progress: tuple[int, int] | None = None
    #: Verified entries withheld from this mirror's country (kept as leaf hashes only).
    withheld: int = 0
    #: Per set of reader countries: (label, entries held, fingerprint) for comparing with the
    #: other parties' officers.
    readable: tuple[tuple[str, int, str], ...] = ()


class OfficerToken:
    """The legal officer's bearer token for the AuditLog service, renewed when it nears expiry.

    From ``command`` (run without a shell; its standard output is the token) or ``file`` (read
    again each time, so another tool may replace it), else ``token`` as given. A token that
    expired and cannot be renewed raises :class:`TokenUnavailable`.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        file: Path | None = None,
        command: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._token = (token or "").strip()
        self._file = file
        self._command = command
        self._now = now

    def _expires(self, token: str) -> datetime | None:
        try:
            exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
        except jwt.PyJWTError:
            return None
        return datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None

    def _fresh(self, token: str) -> bool:
        expires = self._expires(token)
        return bool(token) and (expires is None or (expires - self._now()).total_seconds() > _MARGIN)

    def renew(self) -> None:
        """Get a new token from the command or the file (a failure leaves the old one)."""
        if self._command:
            try:
                done = subprocess.run(  # noqa: S603 - the officer's own configured command, no shell
                    shlex.split(self._command), capture_output=True, text=True, timeout=60, check=True
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise TokenUnavailable(f"the token command {self._command!r} failed: {exc}") from None
            self._token = done.stdout.strip()
        elif self._file is not None:
            try:
                self._token = self._file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise TokenUnavailable(f"cannot read the token file {self._file}: {exc.strerror}") from None

    def __call__(self) -> str:
        """The current token, renewed first if it is about to expire."""
        if not self._fresh(self._token):
            self.renew()
        if not self._fresh(self._token):
            expires = self._expires(self._token)
            when = f"expired at {expires.isoformat(timespec='seconds')}" if expires else "is missing"
            where = (
                f"the token command {self._command!r} gave none newer"
                if self._command
                else f"put a fresh one in {self._file}"
                if self._file
                else "restart the console with a fresh one (or give --token-file or --token-command)"
            )
            raise TokenUnavailable(f"the legal officer's token {when}: {where}")
        return self._token


class BackgroundSync:
    """Runs sync rounds every ``interval`` seconds and a full mirror check every ``check_every`` rounds."""

    def __init__(
        self,
        verifier: MirrorVerifier,
        *,
        interval: float = 10.0,
        check_every: int = 6,
        before_round: Callable[[], object] | None = None,
    ) -> None:
        self.verifier = verifier
        #: Run first in every round (the console looks at its federation file there).
        self._before_round = before_round
        self._interval = interval
        self._check_every = check_every
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        head = verifier.mirror.head()
        self._status = SyncStatus(verified_size=head.size, withheld=verifier.mirror.withheld_count())
        self.rounds = 0
        verifier._progress = self._on_progress

    @property
    def status(self) -> SyncStatus:
        """The latest status (safe to read from any thread)."""
        with self._lock:
            return self._status

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)  # type: ignore[arg-type]

    def _on_progress(self, done: int, total: int) -> None:
        self._update(progress=(done, total))

    def start(self) -> None:
        """Start the thread (the first round runs at once)."""
        self._thread = threading.Thread(target=self._run, name="comity-console-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current round and wait for the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wake(self) -> None:
        """Run the next round now."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_round()
            self._wake.wait(self._interval)
            self._wake.clear()

    def run_round(self) -> None:
        """One round: the mirror check when due (and at the first round), then a sync round."""
        now = datetime.now(UTC)
        self._update(attempted_at=now)
        if self._before_round is not None:
            try:
                self._before_round()
            except Exception as exc:  # a bug there must not stop syncing
                _log.error("the round's first step failed", exc_info=exc)
        try:
            # After a failure the mirror is checked every round, so an edited mirror stays marked.
            if self.rounds % self._check_every == 0 or self.status.failure:
                self.verifier.check_mirror()
                self._update(mirror_checked_at=datetime.now(UTC))
            result = self.verifier.sync()
        except LogVerificationError as exc:
            _log.warning("verification failed: %s", exc.message)
            self._update(failure=exc.message, failure_entry=exc.entry_index, failed_at=now, progress=None)
        except ComityError as exc:
            self._update(stopped=f"syncing stopped: {exc.message}", progress=None)
        except Exception as exc:  # the thread must keep going: say so on the page, details in the log
            _log.exception("sync round failed")
            self._update(
                stopped=f"syncing stopped: an unexpected error ({type(exc).__name__})", progress=None
            )
        else:
            self._update(
                verified_size=result.size,
                verified_at=datetime.now(UTC),
                witnesses=result.witnesses,
                withheld=self.verifier.readable.withheld,
                readable=tuple(self.verifier.readable.summary()),
                failure=None,
                failure_entry=None,
                stopped=None,
                progress=None,
            )
        finally:
            self.rounds += 1
