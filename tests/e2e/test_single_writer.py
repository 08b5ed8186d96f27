"""One writer per SQLite log: a second gateway process over the same file refuses to start."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from comity.sdk.demo.run import RunningFederation

pytestmark = pytest.mark.asyncio(loop_scope="module")

_COMITY = Path(sys.executable).with_name("comity")


async def test_a_second_gateway_on_the_same_sqlite_log_refuses_to_start(running: RunningFederation) -> None:
    config = running.federation.gateway_config
    text = config.read_text()
    # Its own port, so only the log is shared.
    variant = config.with_name("second-gateway.toml")
    variant.write_text(re.sub(r'(?m)^listen = ".*"$', 'listen = "127.0.0.1:0"', text, count=1))
    second = await asyncio.create_subprocess_exec(
        str(_COMITY), "gateway", "serve", "-c", str(variant),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(second.communicate(), timeout=60)
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
    said = " ".join(err.decode().split())
    assert second.returncode == 1, said
    assert "is already open for writing by another process" in said
    assert "Traceback" not in said
