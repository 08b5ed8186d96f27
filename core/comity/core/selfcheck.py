"""Smoke tests an operator runs before starting a component: its keys and certificates are the ones
the federation lists, so a node or gateway never starts only to fail every query at serve time.

Each check raises :class:`ConfigError` naming the key or certificate and saying what to change.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from comity.core.errors import ConfigError
from comity.core.keys import SigningKey, VerifyingKey, passphrase_from_env
from comity.core.pki import check_fingerprint, load_certificate

__all__ = ["check_certificate_pinned", "check_key_listed"]


def check_key_listed(path: Path, listed: VerifyingKey, *, what: str, field: str) -> SigningKey:
    """Load the private key at ``path`` and refuse it unless its public half is ``listed``."""
    key = SigningKey.load(path, key_id=listed.key_id, passphrase=passphrase_from_env())
    ours = key.verifying_key.fingerprint
    if not hmac.compare_digest(ours, listed.fingerprint):
        raise ConfigError(
            f"{what} at {path} (public key fingerprint {ours[:16]}…) is not the key the federation "
            f"lists for {listed.key_id} ({listed.fingerprint[:16]}…)",
            field=field,
            hint="use the key the federation lists, or publish this key in a new federation version",
        )
    return key


def check_certificate_pinned(path: Path, pins: tuple[str, ...], *, what: str) -> None:
    """Refuse the certificate at ``path`` unless the federation pins its fingerprint."""
    check_fingerprint(load_certificate(path), pins, what=f"{what} {path}")
