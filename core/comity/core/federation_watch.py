"""The federation file while a component runs: reloaded on change, verified, failing closed on expiry.

A :class:`FederationWatch` holds the trusted version. It polls the file and its detached
envelope (their sizes, modification times and, when those change, their SHA-256) and trusts a
changed file only as the next version of the one it holds:

- if the held version names ``[signing]`` keys, the file must come with its detached envelope
  signed by their threshold and be exactly the next version (``verify_update``);
- otherwise the file must carry a higher ``version`` than the held one;
- either way it must parse and must not have expired.

A file that fails is refused with an error in the component's log (once per content), and the
held version stays in use. A good one is then *prepared*: each preparer (:meth:`prepare_with`)
builds what the component derives from it (verifiers, quorum rules, the agreements' policies,
whose bundles take a while to load and self-test), off the event loop when polling. If any
preparer fails, the whole version is refused with the same alert and nothing of it is used.
Otherwise it replaces the held one in one step on the event loop: every preparer's swap, then
the listeners, then :attr:`current` returns it, with no await in between, so no request sees
half of a version. When the held version expires, the component fails closed:
:meth:`require_current` refuses every request with ``FEDERATION_FILE_EXPIRED`` until a valid
newer file is in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc

from comity.core import refusals
from comity.core.errors import ComityError
from comity.core.federation import Federation
from comity.core.federation_chain import next_version
from comity.core.federation_sign import envelope_path, verify_pinned
from comity.core.keyhistory import KeyHistory
from comity.core.keys import VerifyingKey
from comity.core.tasks import cancel_and_wait

__all__ = ["FederationWatch", "Preparer", "file_stamp", "load_trusted", "warn_if_own_key_ends"]

_log = logging.getLogger("comity.core.federation_watch")

refusals.register(
    refusals.Check(
        "FEDERATION_FILE_EXPIRED",
        "AUDIT_FIELDS",
        grpc.StatusCode.FAILED_PRECONDITION,
        "the federation file this server trusts (version {version}) expired at {expires}; nothing is "
        "served until its operators install a newer signed version",
        "the federation's signed membership (who may query, with which keys) is valid only until it expires",
    ),
)

Listener = Callable[[Federation], None]
#: Builds what a new version needs, raising to refuse it; returns the swap that puts it in use.
Preparer = Callable[[Federation], Callable[[], None]]


def load_trusted(path: Path, pin: str, *, now: datetime) -> Federation:
    """The federation file a component starts on: checked against ``pin`` (its SHA-256) when one
    is configured, else loaded as it is."""
    if pin:
        return verify_pinned(path, pin, now=now)
    return Federation.load(path)


def warn_if_own_key_ends(
    log: logging.Logger,
    *,
    who: str,
    what: str,
    field: str,
    key: VerifyingKey,
    history: KeyHistory,
    now: datetime,
) -> None:
    """Say so in ``log`` when a trusted version ends (or has ended) a key this component signs with.

    A component's own private keys are read at start only: once the file no longer lists its key
    as valid, the others refuse what it signs until it restarts with the key the file names.
    """
    raw = key.public_key.public_bytes_raw()
    listed = next((k for k in history.keys if k.key.public_key.public_bytes_raw() == raw), None)
    if listed is None or not listed.holds(now):
        log.error(
            "ALERT: the federation file does not list this %s's %s key as valid now: what it signs is "
            "refused; restart it with the key the file names (%s)",
            who,
            what,
            field,
        )
    elif listed.valid_until is not None:
        log.warning(
            "this %s's %s key ends at %s in the federation file: restart it with the new key (%s) by "
            "then, or what it signs after is refused",
            who,
            what,
            listed.valid_until.isoformat().replace("+00:00", "Z"),
            field,
        )


def file_stamp(path: Path) -> tuple[tuple[int, int] | None, ...]:
    """Size and modification time of the file and of its envelope (either may change first)."""
    stamps: list[tuple[int, int] | None] = []
    for p in (path, envelope_path(path)):
        try:
            st = os.stat(p)
        except OSError:
            stamps.append(None)
        else:
            stamps.append((st.st_size, st.st_mtime_ns))
    return tuple(stamps)


class FederationWatch:
    """The trusted federation of a running component, and the poll that follows its file."""

    def __init__(
        self,
        path: Path,
        federation: Federation,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._path = path
        self._current = federation
        self._clock = clock
        self._listeners: list[Listener] = []
        self._preparers: list[Preparer] = []
        self._stamp = file_stamp(path)
        self._digest = self._read_digest()
        self._refused: str | None = None  # digest of the last refused content (alert once)
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> Federation:
        """The version in use."""
        return self._current

    def on_change(self, listener: Listener) -> None:
        """Call ``listener`` with each newly trusted version (on the event loop that polls).

        A listener must not fail: what can fail belongs in a preparer (:meth:`prepare_with`).
        """
        self._listeners.append(listener)

    def prepare_with(self, preparer: Preparer) -> None:
        """Have ``preparer`` build what each new version needs before it is trusted.

        ``preparer(new)`` runs in a worker thread when polling, so it may be slow, and must not
        touch what serves requests; an exception refuses the whole version (with an alert, and
        the held version stays in use). It returns the swap that puts what it built in use,
        called on the event loop together with every other preparer's: that swap must not fail.
        """
        self._preparers.append(preparer)

    def _read_digest(self) -> str | None:
        digest = hashlib.sha256()
        try:
            digest.update(hashlib.sha256(self._path.read_bytes()).digest())
        except OSError:
            return None
        with contextlib.suppress(OSError):
            digest.update(envelope_path(self._path).read_bytes())
        return digest.hexdigest()

    def expired(self) -> bool:
        """Whether the version in use has expired (a format-1 file never does)."""
        expires = self._current.expires
        return expires is not None and self._clock() >= expires

    def require_current(self) -> Federation:
        """The version in use; refuses (fail closed) when it has expired."""
        federation = self._current
        if federation.expires is not None and self._clock() >= federation.expires:
            raise refusals.refuse(
                "FEDERATION_FILE_EXPIRED",
                version=federation.version,
                expires=federation.expires.isoformat().replace("+00:00", "Z"),
            )
        return federation

    def check(self) -> bool:
        """Look at the file once; returns whether a new version was trusted (prepared in this thread)."""
        candidate = self._candidate()
        if candidate is None:
            return False
        swaps = self._prepare(candidate[0])
        return swaps is not None and self._adopt(*candidate, swaps)

    async def check_async(self) -> bool:
        """:meth:`check`, with the preparers run in a worker thread so serving goes on meanwhile."""
        candidate = self._candidate()
        if candidate is None:
            return False
        swaps = await asyncio.to_thread(self._prepare, candidate[0])
        return swaps is not None and self._adopt(*candidate, swaps)

    def _candidate(self) -> tuple[Federation, str] | None:
        """A changed file that verifies as the next version, with its digest; None otherwise."""
        stamp = file_stamp(self._path)
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        digest = self._read_digest()
        if digest is None or digest == self._digest or digest == self._refused:
            return None
        try:
            return self._verify(), digest
        except ComityError as exc:
            check = getattr(exc, "check", "") or ",".join(exc.check_codes)
            # The same content is not checked again; a version that could not be prepared is
            # (what it lacked, say a bundle, may be put in place): on the file's next change.
            self._refused = digest
            self._alert(check or type(exc).__name__, exc.message)
            return None

    def _prepare(self, federation: Federation) -> list[Callable[[], None]] | None:
        """Every preparer's swap for ``federation``; None (refused, with an alert) if one fails."""
        swaps: list[Callable[[], None]] = []
        for preparer in self._preparers:
            try:
                swaps.append(preparer(federation))
            except ComityError as exc:
                check = getattr(exc, "check", "") or ",".join(exc.check_codes)
                self._alert(check or type(exc).__name__, exc.message, version=federation.version)
                return None
            except Exception as exc:  # a bug, or a library's own error: still no half-used version
                _log.error("preparing federation version %s failed", federation.version, exc_info=exc)
                self._alert(type(exc).__name__, str(exc), version=federation.version)
                return None
        return swaps

    def _adopt(self, federation: Federation, digest: str, swaps: list[Callable[[], None]]) -> bool:
        for swap in swaps:
            swap()
        for listener in self._listeners:
            listener(federation)
        self._current, self._digest, self._refused = federation, digest, None
        _log.warning("federation file %s: now version %s", self._path, federation.version)
        return True

    def _alert(self, check: str, message: str, *, version: int | None = None) -> None:
        what = "" if version is None else f" (version {version} cannot be put in use)"
        _log.error(
            "ALERT: federation file %s refused (%s)%s: %s; still serving version %s",
            self._path,
            check,
            what,
            message,
            self._current.version,
        )

    def _verify(self) -> Federation:
        return next_version(self._current, self._path, now=self._clock())

    def start(self, interval: float) -> None:
        """Poll every ``interval`` seconds on the running event loop (a stat, and a small read on change)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll(interval), name="federation-watch")

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_async()
            except Exception as exc:  # a bug here must not stop the poll, nor serving
                _log.error("federation file check failed", exc_info=exc)

    async def stop(self) -> None:
        """Stop polling."""
        await cancel_and_wait(self._task)
        self._task = None
