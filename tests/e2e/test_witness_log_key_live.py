"""An independent witness follows a log key rotation in the federation file without a restart.

The demo federation runs with an NGO's witness (`comity witness serve`, its own process) whose
group the quorum needs. Version 2 rotates the log key by overlap (operators.md: ``until_size`` on
the old key, ``from_size`` on the new one); the witness takes it while running. The gateway (and
the nodes) restart with the new log key, the witness does not: it cosigns the checkpoints the new
key signs, so they reach the quorum. A witness that kept version 1's log key history would refuse
them, and no checkpoint after the rotation would count.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import pytest
from federation_text import format2
from ngo_witness import append_entry, independent_witness, quorum_with_ngo, serve_witness, stop_witness
from served import listening, wait_for

from comity.audit.note import Ed25519Signer, Note
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.sdk.demo.run import running_federation
from comity.sdk.demo.setup import build_demo_federation, free_ports

pytestmark = pytest.mark.asyncio


def _publish(file: Path, text: str) -> None:
    staged = file.with_name("federation.next.toml")
    staged.write_text(text)
    os.replace(staged, file)


def _set_log_key(config: Path, path: Path) -> None:
    text = config.read_text()
    line = re.search(r"\nlog_key = .*\n", text)
    assert line
    config.write_text(text.replace(line.group(0), f'\nlog_key = "{path}"\n'))


async def test_an_independent_witness_cosigns_under_a_rotated_log_key_without_a_restart(
    tmp_path: Path,
) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=5, seed=31)
    (port,) = free_ports(1)
    entry, config = independent_witness(fed.directory, port)
    file = fed.layout.federation_file
    text = format2(file.read_text()) + entry
    file.write_text(text)
    log = tmp_path / "witness.log"
    log_origin = Federation.load(file).gateway.log.origin
    new_key = SigningKey.generate(log_origin)
    new_key.save(fed.directory / "keys" / "log-2027.key")

    process: subprocess.Popen[bytes] | None = None
    try:
        async with running_federation(fed) as running:
            process = serve_witness(config, log)
            await asyncio.to_thread(wait_for, lambda: listening(port), "the witness listening", 60)
            await quorum_with_ngo(running, await append_entry(running, "v1"))
            old_key = re.search(r'\[\[gateway\.log\.keys\]\]\nkey = "([^"]+)"\n', text)
            assert old_key
            size = running.gateway.ledger.log.newest_signed()[0]

            # Version 2: the old log key up to size + 1000, the new one from the log's size now.
            rotated = text.replace("\nversion = 1\n", "\nversion = 2\n", 1).replace(
                old_key.group(0),
                f"{old_key.group(0)}until_size = {size + 1000}\n\n"
                f'[[gateway.log.keys]]\nkey = "{new_key.verifying_key.to_text()}"\nfrom_size = {size}\n',
            )
            _publish(file, rotated)
            await asyncio.to_thread(wait_for, lambda: "now version 2" in log.read_text(), "version 2", 20)

        # The gateway (and the nodes) restart, the gateway signing with the new log key; the witness runs on.
        _set_log_key(fed.gateway_config, fed.directory / "keys" / "log-2027.key")
        async with running_federation(fed) as running:
            later = await append_entry(running, "v2")
            quorum = await quorum_with_ngo(running, later)
            assert quorum > size
            note, _ = await running.gateway.ledger.latest_checkpoint()
            signer = Ed25519Signer(log_origin, new_key.private_key)
            assert Note.parse(note).signatures[0].key_id == signer.verifier.key_id
        said = log.read_text()
        assert "Traceback" not in said, said
    finally:
        stop_witness(process)
