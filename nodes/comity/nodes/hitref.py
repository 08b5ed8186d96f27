"""Hit references: the opaque token a HIT_CHECK returns for a later FETCH.

A reference binds the legal order and the exact (normalised) selectors of the hit check and
expires after the agreement's follow-up window. It is a MAC under a key only this node
holds, so a reference from another order, other selectors, or another node does not pass,
and it reveals nothing about the records behind it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from comity.core.errors import PermissionDenied, RuleViolationInfo

__all__ = ["FOLLOW_UP_WINDOW", "HitReferences", "InvalidHitReference"]

# Prüm II: core data follows a confirmed hit within 48 hours.
FOLLOW_UP_WINDOW = timedelta(hours=48)
_VERSION = "h1"


class InvalidHitReference(PermissionDenied):
    """The FETCH's hit reference is not one this node issued for this order and these selectors."""


class HitReferences:
    """Issues and checks hit references under a node-local secret."""

    def __init__(self, secret: bytes, *, window: timedelta = FOLLOW_UP_WINDOW) -> None:
        self._key = hashlib.sha256(b"comity/hit-reference/v1\x00" + secret).digest()
        self._window = window

    def _mac(self, order_id: str, selectors: Sequence[tuple[str, str]], expires: int) -> str:
        h = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (order_id, str(expires), *(f"{t}\x1f{v}" for t, v in sorted(selectors))):
            data = part.encode()
            h.update(len(data).to_bytes(4, "big") + data)
        return base64.urlsafe_b64encode(h.digest()[:24]).decode().rstrip("=")

    def issue(self, order_id: str, selectors: Sequence[tuple[str, str]], *, now: datetime) -> str:
        """A reference valid until ``now`` plus the follow-up window."""
        expires = int((now + self._window).timestamp())
        return f"{_VERSION}.{expires}.{self._mac(order_id, selectors, expires)}"

    def check(
        self, reference: str, order_id: str, selectors: Sequence[tuple[str, str]], *, now: datetime
    ) -> None:
        """Raise :class:`InvalidHitReference` unless ``reference`` is valid for this order and selectors."""
        version, _, rest = reference.partition(".")
        expires_text, _, mac = rest.partition(".")
        if version != _VERSION or not expires_text.isdigit() or not mac:
            raise _refusal("the hit reference is malformed")
        expires = int(expires_text)
        if not hmac.compare_digest(mac, self._mac(order_id, selectors, expires)):
            raise _refusal("the hit reference was not issued for this order and these selectors")
        if now > datetime.fromtimestamp(expires, UTC):
            raise _refusal("the hit reference has expired; run a new hit check")


def _refusal(message: str) -> InvalidHitReference:
    rule = RuleViolationInfo("TWO_STEP", message, "Prüm Decision 2008/615; Prüm II Reg. 2024/982")
    return InvalidHitReference(message, violations=[rule])
