"""The gateway's channels to an independent witness follow its client certificate on disk.

The demo federation runs on a signed version 1 with an NGO's witness (`comity witness serve`, its
own process) whose group the quorum needs. The gateway's client certificate is replaced by an
overlap, as operators.md says: a version pinning the old and the new one, the gateway's files
replaced, then a version pinning only the new one, which the witness takes at once (it then
refuses the old certificate on every call, on connections already open too). The gateway, not
restarted, has given its channel to the witness the new certificate meanwhile, so the witness
still cosigns the log's new checkpoints and they reach the quorum.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ngo_witness import append_entry, independent_witness, quorum_with_ngo, serve_witness, stop_witness
from served import listening, wait_for
from signed_demo import FAR, signed_version

from comity.core.federation_sign import envelope_path, sign_federation_file
from comity.core.keys import SigningKey
from comity.core.pki import CertificateAuthority, IssuedCertificate
from comity.sdk.demo.run import running_federation
from comity.sdk.demo.setup import DemoFederation, build_demo_federation, free_ports

pytestmark = pytest.mark.asyncio


def _poll_fast(config: Path, section: str) -> None:
    text = config.read_text()
    config.write_text(text.replace(f"[{section}]\n", f"[{section}]\nfederation_poll_seconds = 0.1\n", 1))


def _publish(fed: DemoFederation, text: str, signer: SigningKey) -> None:
    file = fed.layout.federation_file
    staged = file.with_name("federation.next.toml")
    staged.write_text(text)
    sign_federation_file(staged, signer)
    envelope_path(staged).replace(envelope_path(file))
    staged.replace(file)


def _replace(path: Path, data: bytes) -> None:
    staged = path.with_name(path.name + ".next")
    staged.write_bytes(data)
    os.replace(staged, path)


async def _said(log: Path, words: str) -> None:
    await asyncio.to_thread(wait_for, lambda: words in log.read_text(), f"the witness saying {words!r}", 20)


async def test_the_witness_still_cosigns_after_the_gateway_client_certificate_rotates(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=5, seed=37)
    (port,) = free_ports(1)
    entry, config = independent_witness(fed.directory, port)
    _poll_fast(config, "witness")
    _poll_fast(fed.gateway_config, "gateway")
    for node_config in fed.node_configs.values():
        _poll_fast(node_config, "node")
    signer = SigningKey.generate("us.fbi/federation-2026")
    text = fed.layout.federation_file.read_text() + entry
    fed.layout.federation_file.write_text(signed_version(text, version=1, expires=FAR, signer=signer))
    sign_federation_file(fed.layout.federation_file, signer)
    g = fed.layout.gateway
    old = IssuedCertificate.load(g.client_cert, g.client_key)
    new = CertificateAuthority.load(g.ca_cert, g.ca_key).issue_client("gateway", now=datetime.now(UTC))
    rel = g.client_cert.relative_to(fed.directory).as_posix()
    log = tmp_path / "witness.log"

    process: subprocess.Popen[bytes] | None = None
    try:
        async with running_federation(fed) as running:
            process = serve_witness(config, log)
            await asyncio.to_thread(wait_for, lambda: listening(port), "the witness listening", 60)
            await quorum_with_ngo(running, await append_entry(running, "v1"))

            # The overlap: a version pinning both, its client_cert file holding both.
            both = g.client_cert.with_name("client.pinned.crt")
            both.write_bytes(new.certificate_pem + old.certificate_pem)
            overlap = text.replace(f'"{rel}"', f'"{both.relative_to(fed.directory).as_posix()}"')
            overlap = overlap.replace(f'"{old.fingerprint}"', f'["{new.fingerprint}", "{old.fingerprint}"]')
            assert overlap.count(new.fingerprint) == 1
            _publish(fed, signed_version(overlap, version=2, expires=FAR, signer=signer), signer)
            await _said(log, "now version 2")
            await quorum_with_ngo(running, await append_entry(running, "v2"))

            # The gateway's own files: from now on it shows the new certificate.
            _replace(g.client_key, new.private_key_pem)
            _replace(g.client_cert, new.certificate_pem)

            # A version without the old certificate: the witness refuses it from the next call.
            only_new = text.replace(f'"{old.fingerprint}"', f'"{new.fingerprint}"')
            _publish(fed, signed_version(only_new, version=3, expires=FAR, signer=signer), signer)
            await _said(log, "now version 3")
            await quorum_with_ngo(running, await append_entry(running, "v3"))
            assert "Traceback" not in log.read_text()
    finally:
        stop_witness(process)
