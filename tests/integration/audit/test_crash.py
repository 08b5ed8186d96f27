"""A gateway killed with SIGKILL in the middle of appends leaves a log that verifies and continues."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit.checkpoint import open_checkpoint
from comity.audit.log import AppendResult, TransparencyLog
from comity.audit.note import Ed25519Signer
from comity.audit.verify import verify_log

ORIGIN = "comity.example/log"

APPENDER = textwrap.dedent(
    """
    import asyncio, sys
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from comity.audit.log import AppendResult, TransparencyLog

    async def main(url, seed):
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
        log = await TransparencyLog.open(url, origin="comity.example/log", key=key, batch_interval=0.001)
        n = 0
        while True:
            results = await asyncio.gather(*(log.append(f"entry {n + i}".encode() * 20) for i in range(8)))
            n += 8
            print(max(r.tree_size for r in results), flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def _append_once(url: str, key: Ed25519PrivateKey) -> AppendResult:
    log = await TransparencyLog.open(url, origin=ORIGIN, key=key)
    try:
        return await log.append(b"after the crash")
    finally:
        await log.close()


def test_kill_during_appends_then_reopen_verify_and_continue(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    state = tmp_path / "seen"
    child = subprocess.Popen(
        [sys.executable, "-c", APPENDER, url, seed.hex()], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    acknowledged = 0
    try:
        for line in child.stdout:
            acknowledged = int(line)
            if acknowledged >= 40 and not state.exists():
                verify_log(url, verifier_key=Ed25519Signer(ORIGIN, key).verifier, state=state)
            if acknowledged >= 120:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    verifier = Ed25519Signer(ORIGIN, key).verifier
    report = verify_log(url, verifier_key=verifier, state=state)  # consistent with what was seen mid-run
    assert report.previous_size is not None and report.previous_size >= 40
    assert report.tree_size >= acknowledged  # every acknowledged append survived the kill
    after = asyncio.run(_append_once(url, key))
    assert after.index == report.tree_size
    assert open_checkpoint(after.checkpoint, verifier).checkpoint.size == report.tree_size + 1
    verify_log(url, verifier_key=verifier, state=state)
