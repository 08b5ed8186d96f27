"""Pending markers on SQLite and PostgreSQL: opened and closed in the entries' own transactions."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit.errors import AuditUnavailable
from comity.audit.log import TransparencyLog
from comity.audit.pending import PendingMarker

KEY = Ed25519PrivateKey.generate()
LogUrl = tuple[str, str]


async def _open(log_url: LogUrl) -> TransparencyLog:
    url, prefix = log_url
    return await TransparencyLog.open(url, origin="comity.example/log", key=KEY, table_prefix=prefix)


async def test_a_marker_opens_with_its_entry_and_closes_with_another(log_url: LogUrl) -> None:
    log = await _open(log_url)
    try:
        await log.append(b"before")
        marker = PendingMarker(b"\1" * 32, "q-1", "ca-node", 1_700_000_000)
        opened = await log.append(b"decision", opens=marker)
        await log.append(b"other", opens=PendingMarker(b"\2" * 32, "q-2", "us-node", 1_700_000_001))
        assert await log.pending_markers() == [
            PendingMarker(b"\1" * 32, "q-1", "ca-node", 1_700_000_000, opened.index),
            PendingMarker(b"\2" * 32, "q-2", "us-node", 1_700_000_001, opened.index + 1),
        ]
        await log.append(b"disclosure", closes=b"\1" * 32)
        assert [m.query_id for m in await log.pending_markers()] == ["q-2"]
    finally:
        await log.close()
    reopened = await _open(log_url)  # durable: what is open stays open across a restart
    try:
        assert [m.query_id for m in await reopened.pending_markers()] == ["q-2"]
        assert await reopened.contains(b"decision") and not await reopened.contains(b"never")
    finally:
        await reopened.close()


async def test_a_failed_batch_opens_no_marker(log_url: LogUrl) -> None:
    log = await _open(log_url)
    try:
        marker = PendingMarker(b"\3" * 32, "q-3", "ca-node", 1_700_000_000)
        await log.append(b"decision", opens=marker)
        # The same marker again violates the key: the batch fails whole, its entry is not logged.
        with pytest.raises(AuditUnavailable):
            await log.append(b"decision again", opens=marker)
        assert not await log.contains(b"decision again")
        assert len(await log.pending_markers()) == 1
    finally:
        await log.close()
