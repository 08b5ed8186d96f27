"""A held independent witness compares its state through the gateway endpoints of the version in use.

An NGO's witness (`comity witness serve`) cosigns in a running demo federation whose quorum needs
it, and everything stops. The witness starts again while no gateway answers at the endpoint of
its file's version 1: its state file exists, so it starts **held** (it cosigns nothing until it has
compared its state with the gateway's log). Version 2 moves the gateway to another port; the
witness takes it while held, and the gateway starts there. The witness then compares its state
through the new endpoint, is released, and cosigns: the quorum covers the log's new entries. A
witness that kept asking version 1's endpoint would stay held.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from federation_text import format2
from ngo_witness import append_entry, independent_witness, quorum_with_ngo, serve_witness, stop_witness
from served import listening, wait_for

from comity.sdk.demo.run import running_federation
from comity.sdk.demo.setup import build_demo_federation, free_ports

pytestmark = pytest.mark.asyncio


def _publish(file: Path, text: str) -> None:
    staged = file.with_name("federation.next.toml")
    staged.write_text(text)
    os.replace(staged, file)


async def test_a_held_independent_witness_reaches_the_log_where_a_new_version_says(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=5, seed=43)
    port, moved = free_ports(2)
    entry, config = independent_witness(fed.directory, port)
    file = fed.layout.federation_file
    text = format2(file.read_text()) + entry
    file.write_text(text)
    log = tmp_path / "witness.log"
    endpoint = fed.layout.gateway.endpoint
    assert text.count(f'"{endpoint}"') == 1
    gateway_config = fed.gateway_config.read_text()
    assert gateway_config.count(f'"{endpoint}"') == 1

    process: subprocess.Popen[bytes] | None = None
    try:
        async with running_federation(fed) as running:
            process = serve_witness(config, log)
            await asyncio.to_thread(wait_for, lambda: listening(port), "the witness listening", 60)
            await quorum_with_ngo(running, await append_entry(running, "v1"))
        stop_witness(process)

        # Nothing answers at version 1's gateway endpoint: the witness, its state on disk, is held.
        process = serve_witness(config, log)
        await asyncio.to_thread(wait_for, lambda: listening(port), "the witness listening again", 60)
        new_endpoint = f"127.0.0.1:{moved}"
        _publish(file, text.replace("\nversion = 1\n", "\nversion = 2\n", 1).replace(endpoint, new_endpoint))
        await asyncio.to_thread(wait_for, lambda: "now version 2" in log.read_text(), "version 2", 20)

        fed.gateway_config.write_text(gateway_config.replace(endpoint, new_endpoint))
        async with running_federation(fed) as running:
            await quorum_with_ngo(running, await append_entry(running, "v2"))
        said = log.read_text()
        assert "could not compare the witness state" in said, said  # it was held meanwhile
        assert "Traceback" not in said, said
    finally:
        stop_witness(process)
