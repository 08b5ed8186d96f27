"""The log key rotates by tree size: the log signs only within its key's range, and reopens across it."""

from __future__ import annotations

from pathlib import Path

import pytest

from comity.audit.errors import AuditUnavailable
from comity.audit.log import TransparencyLog
from comity.core.errors import ConfigError
from comity.core.keyhistory import LogKeyHistory, SizedKey
from comity.core.keys import SigningKey

pytestmark = pytest.mark.asyncio

ORIGIN = "comity.example/rotation"


async def test_the_log_signs_within_its_keys_range_and_reopens_under_the_history(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    old, new = SigningKey.generate(ORIGIN), SigningKey.generate(ORIGIN)
    history = LogKeyHistory(
        (SizedKey(old.verifying_key, 0, 3), SizedKey(new.verifying_key, 2))  # overlap at size 2
    )
    log = await TransparencyLog.open(url, origin=ORIGIN, key=old, log_keys=history, batch_interval=0)
    await log.append(b"one")
    await log.append(b"two")
    with pytest.raises(AuditUnavailable, match="may not sign a checkpoint of tree size 3"):
        await log.append(b"three")  # fails closed: beyond the old key's range
    await log.close()

    with pytest.raises(ConfigError, match="not the one the federation file lists") as refused:
        await TransparencyLog.open(
            url,
            origin=ORIGIN,
            key=SigningKey.generate(ORIGIN),
            log_keys=history,
            batch_interval=0,
        )
    assert refused.value.field == "keys.log_key"

    # The new key continues the same log: the old key's checkpoints still open.
    log = await TransparencyLog.open(url, origin=ORIGIN, key=new, log_keys=history, batch_interval=0)
    try:
        result = await log.append(b"three")
        assert result.tree_size == 3
        assert log.open_own(await log.checkpoint(2)).checkpoint.size == 2  # signed by the old key
        assert log.open_own(await log.checkpoint(3)).checkpoint.size == 3
    finally:
        await log.close()

    # Without the history, the new key does not recognise the old key's log.
    with pytest.raises(ConfigError, match="not signed by this log key"):
        await TransparencyLog.open(url, origin=ORIGIN, key=old, batch_interval=0)
