"""The federation file changes while the gateway and the nodes run (real processes).

Version 1 names one federation signing key. Each bad file is refused with an alert in the
server's log and the trusted version stays in use: garbage, a file edited after signing, a
file signed by a key the trusted version does not name. A correctly signed version 2 that
removes an investigator takes effect within seconds, without a restart; a version 3 that
expires while the servers run makes them fail closed with FEDERATION_FILE_EXPIRED.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from served import start_server, wait_for

from comity.core.errors import ComityError
from comity.core.federation_sign import envelope_path, sign_federation_file
from comity.core.keys import SigningKey
from comity.sdk.demo.run import Outcome, run_scenario, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.profile import load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")

COMITY = str(Path(sys.executable).parent / "comity")


def _format2(text: str, *, version: int, expires: str, signer: SigningKey) -> str:
    """The demo's file as ``version``, expiring at ``expires``, with ``signer`` as its [signing] role."""
    head = re.search(r"\nversion = \d+\nexpires = \S+\n", text)
    assert head
    role = (
        f"\nversion = {version}\nexpires = {expires}\n\n[signing]\nthreshold = 1\n"
        f'[[signing.keys]]\nid = "{signer.key_id}"\nkey = "{signer.verifying_key.to_text()}"\n'
    )
    return text.replace(head.group(0), role, 1)


@dataclass
class Running:
    fed: DemoFederation
    original: str  # the demo's file as written
    signer: SigningKey
    logs: dict[str, Path]

    def publish(self, text: str, *, signer: SigningKey | None = None) -> None:
        """Write a new version as an operator would: the envelope first, then the file, each by rename."""
        file = self.fed.layout.federation_file
        staged = file.with_name("federation.next.toml")
        staged.write_text(text)
        if signer is not None:
            envelope_path(staged).unlink(missing_ok=True)
            sign_federation_file(staged, signer)
            os.replace(envelope_path(staged), envelope_path(file))
        os.replace(staged, file)

    def said(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")


def _poll_fast(config: Path, section: str) -> None:
    text = config.read_text()
    config.write_text(text.replace(f"[{section}]\n", f"[{section}]\nfederation_poll_seconds = 0.1\n", 1))


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    fed = build_demo_federation(Path(tmp_path_factory.mktemp("reload")), people=10, seed=13)
    signer = SigningKey.generate("us.fbi/federation-2026")
    file = fed.layout.federation_file
    original = file.read_text()
    file.write_text(_format2(original, version=1, expires="2030-01-01T00:00:00Z", signer=signer))
    sign_federation_file(file, signer)
    _poll_fast(fed.gateway_config, "gateway")
    for config in fed.node_configs.values():
        _poll_fast(config, "node")
    logs_dir = fed.directory / "logs"
    logs_dir.mkdir()
    logs = {"gateway": logs_dir / "gateway.log", **{n: logs_dir / f"{n}.log" for n in fed.node_configs}}
    processes = [
        start_server(
            "gateway", fed.gateway_config, int(fed.layout.gateway.endpoint.rsplit(":", 1)[1]), logs["gateway"]
        )
    ]
    try:
        for node, config in fed.node_configs.items():
            processes.append(start_server("node", config, fed.layout.nodes[node].port, logs[node]))
        yield Running(fed, original, signer, logs)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _query(running: Running, agency: str, title: str) -> Outcome:
    s = next(x for x in scenarios(running.fed) if x.title.startswith(title))
    async with load_profile(running.fed.profiles[agency]).async_client() as client:
        return await run_scenario(client, running.fed, s)


async def _answered(running: Running, agency: str, title: str) -> None:
    for _ in range(60):  # a node's channel back to the gateway may still be in back-off
        outcome = await _query(running, agency, title)
        if outcome.result is not None:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{title!r} not answered: {outcome.error}")


def _without_rcmp_investigator(text: str) -> str:
    cut = re.sub(r'\[\[members.investigators\]\]\nid = "ca.rcmp/[^"]*"\nkey = "[^"]*"\n', "", text)
    assert cut != text
    return cut


async def _alerted(running: Running, check: str) -> None:
    for name in running.logs:
        await asyncio.to_thread(
            wait_for, lambda n=name: f"({check})" in running.said(n), f"{name}'s alert {check}"
        )


async def test_bad_files_are_refused_and_a_signed_revocation_applies_without_restart(
    running: Running,
) -> None:
    await _answered(running, "ca.rcmp", "RCMP fetches")
    v2 = _format2(
        _without_rcmp_investigator(running.original),
        version=2,
        expires="2030-01-01T00:00:00Z",
        signer=running.signer,
    )

    # Garbage, beside the trusted version's envelope: the envelope signs other bytes.
    running.publish("this is [[ not a federation file")
    await _alerted(running, "FEDERATION_EDITED_AFTER_SIGNING")
    # Signed, but by a key version 1 does not name.
    running.publish(v2, signer=SigningKey.generate("us.fbi/federation-2026"))
    await _alerted(running, "FEDERATION_BELOW_THRESHOLD")
    # Signed by the right key, but not a newer version (a replay of version 1, edited).
    v1 = _format2(running.original, version=1, expires="2029-01-01T00:00:00Z", signer=running.signer)
    running.publish(v1, signer=running.signer)
    await _alerted(running, "FEDERATION_VERSION")
    for name in running.logs:
        assert "Traceback" not in running.said(name), running.said(name)
    outcome = await _query(running, "ca.rcmp", "RCMP fetches")
    assert outcome.result is not None, outcome.error  # still serving version 1

    running.publish(v2, signer=running.signer)
    for name in running.logs:  # every server follows the file within seconds, without a restart
        await asyncio.to_thread(
            wait_for, lambda n=name: "now version 2" in running.said(n), f"{name}'s reload", 15
        )
    outcome = await _query(running, "ca.rcmp", "RCMP fetches")
    assert outcome.error is not None, "the revoked investigator is still served"
    assert outcome.error.code == grpc.StatusCode.UNAUTHENTICATED
    assert outcome.error.check_codes == ["TOKEN_SUBJECT"], outcome.error.message
    await _answered(running, "us.fbi", "FBI asks")  # everyone else is served as before

    # Version 3 expires in a few seconds: from then on, every request is refused.
    expires = (datetime.now(UTC) + timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    running.publish(
        _format2(
            _without_rcmp_investigator(running.original), version=3, expires=expires, signer=running.signer
        ),
        signer=running.signer,
    )
    await asyncio.to_thread(wait_for, lambda: "now version 3" in running.said("gateway"), "version 3")
    await _answered(running, "us.fbi", "FBI asks")
    await asyncio.sleep(max(0.0, (datetime.fromisoformat(expires) - datetime.now(UTC)).total_seconds()) + 0.5)
    outcome = await _query(running, "us.fbi", "FBI asks")
    assert outcome.error is not None
    err: ComityError = outcome.error
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.check_codes == ["FEDERATION_FILE_EXPIRED"]
    assert "version 3" in err.message and "expired" in err.message
