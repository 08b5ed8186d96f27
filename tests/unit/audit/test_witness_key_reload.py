"""A witness key that a newer federation file retires stops adding cosignatures at once.

What it cosigned before stays valid under the key history (by the line's own time); a new
line under it is refused however it is dated, when the log is given the new history while it
runs (``TransparencyLog.use_trust``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit.cosignature import CosignatureSigner
from comity.audit.errors import UnverifiedNote
from comity.audit.log import TransparencyLog
from comity.audit.note import Note
from comity.audit.quorum import Quorum, WitnessKeys
from comity.core.keyhistory import DatedKey, KeyHistory
from comity.core.keys import VerifyingKey
from comity.core.witnesspolicy import WitnessGroup, WitnessPolicy

ORIGIN = "comity.example/test"


def _quorum(history: KeyHistory) -> Quorum:
    return Quorum([WitnessKeys("w", "w", history)], WitnessPolicy((WitnessGroup("w", "w", ("w",), 1),)))


def _key(private: Ed25519PrivateKey) -> VerifyingKey:
    return VerifyingKey("w", private.public_key())


async def test_a_rotated_witness_key_adds_no_cosignature_once_the_log_has_the_new_history(
    tmp_path: Path,
) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    now = datetime.now(UTC).replace(microsecond=0)
    before = _quorum(KeyHistory((DatedKey(_key(old)),)))
    end = now - timedelta(seconds=30)  # the new version ended the old key half a minute ago
    after = _quorum(
        KeyHistory((DatedKey(_key(old), valid_until=end), DatedKey(_key(new), valid_from=end - timedelta(1))))
    )
    log = await TransparencyLog.open(
        f"sqlite:///{tmp_path / 'log.db'}", origin=ORIGIN, key=Ed25519PrivateKey.generate(), cosigners=before
    )
    try:
        await log.append(b"entry")
        size, note = log.newest_signed()
        text = Note.parse(note).text
        made_before = int((end - timedelta(seconds=5)).timestamp())  # inside the old key's period
        line = CosignatureSigner("w", old).cosign(text, timestamp=made_before)
        fresh = CosignatureSigner("w", old).cosign(text, timestamp=int(time.time()))
        await log.add_cosignature(size, fresh)  # version 1: the old key counts

        log.use_trust(None, after)
        # Under the history, the line dated inside the old key's period verifies (what is kept
        # from before); added now, it is refused, and so is one dated now.
        assert after.verify(text, line) == "w"
        for refused in (line, fresh):
            with pytest.raises(UnverifiedNote, match="at that time and now"):
                await log.add_cosignature(size, refused)
        await log.add_cosignature(size, CosignatureSigner("w", new).cosign(text, timestamp=int(time.time())))
        assert len(await log.cosignatures(size)) == 1  # one line per witness on a checkpoint
    finally:
        await log.close()
