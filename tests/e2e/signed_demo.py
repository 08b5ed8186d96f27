"""The demo federation on a signed, versioned federation file, its servers as real processes.

Version 1 names one federation signing key; each test publishes the next versions as an
operator would (the envelope first, then the file, each by rename) and reads what each server
says in its log. Every server polls the file every 0.1 s.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from served import port_of, start_server, stop_server, wait_for

from comity.core.federation_sign import envelope_path, sign_federation_file
from comity.core.keys import SigningKey
from comity.sdk.demo.setup import DEMO_COUNTRIES, DemoFederation, build_demo_federation

FAR = "2030-01-01T00:00:00Z"


def signed_version(text: str, *, version: int, expires: str, signer: SigningKey) -> str:
    """The demo's file as ``version``, expiring at ``expires``, with ``signer`` as its [signing] role."""
    head = re.search(r"\nversion = \d+\nexpires = \S+\n", text)
    assert head
    role = (
        f"\nversion = {version}\nexpires = {expires}\n\n[signing]\nthreshold = 1\n"
        f'[[signing.keys]]\nid = "{signer.key_id}"\nkey = "{signer.verifying_key.to_text()}"\n'
    )
    return text.replace(head.group(0), role, 1)


def write_signed(file: Path, text: str, *, version: int, role: SigningKey, signer: SigningKey) -> bytes:
    """Write ``text`` (the demo's file) to ``file`` as ``version`` whose [signing] role is ``role``'s
    key, with an envelope signed by ``signer`` (another key forges it); returns the file's bytes."""
    file.write_text(signed_version(text, version=version, expires=FAR, signer=role))
    envelope_path(file).unlink(missing_ok=True)
    sign_federation_file(file, signer)
    return file.read_bytes()


def zulu(when: datetime) -> str:
    """``when`` as the federation file writes instants."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SignedDemo:
    """The running demo: its files, the federation signing key, each server's log."""

    fed: DemoFederation
    original: str  # the demo's file as written
    signer: SigningKey
    logs: dict[str, Path]
    #: Each server's process by name, as started (a test that stops one and starts another
    #: stops that one itself).
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def version(self, text: str, version: int, *, expires: str = FAR) -> str:
        """``text`` (the demo's file, edited) as ``version`` under this federation's signing role."""
        return signed_version(text, version=version, expires=expires, signer=self.signer)

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
        """What server ``name`` ("gateway" or a node id) has logged so far."""
        return self.logs[name].read_text(errors="replace")

    def wait_said(self, name: str, words: str, timeout: float = 30.0) -> None:
        """Wait until server ``name`` has logged ``words``."""
        wait_for(lambda: words in self.said(name), f"{name} saying {words!r}", timeout)


def _poll_fast(config: Path, section: str) -> None:
    text = config.read_text()
    config.write_text(text.replace(f"[{section}]\n", f"[{section}]\nfederation_poll_seconds = 0.1\n", 1))


@contextmanager
def signed_demo(
    directory: Path, *, seed: int, gateway_extra: str = "", countries: Sequence[str] = DEMO_COUNTRIES
) -> Iterator[SignedDemo]:
    """Build the demo of ``countries`` in ``directory`` on a signed version 1, start the gateway and
    every node, and stop them on exit. ``gateway_extra`` is appended to the gateway's config (its
    own sections)."""
    fed = build_demo_federation(directory, people=10, seed=seed, countries=countries)
    signer = SigningKey.generate("us.fbi/federation-2026")
    file = fed.layout.federation_file
    original = file.read_text()
    file.write_text(signed_version(original, version=1, expires=FAR, signer=signer))
    sign_federation_file(file, signer)
    _poll_fast(fed.gateway_config, "gateway")
    if gateway_extra:
        fed.gateway_config.write_text(fed.gateway_config.read_text() + gateway_extra)
    for config in fed.node_configs.values():
        _poll_fast(config, "node")
    logs_dir = fed.directory / "logs"
    logs_dir.mkdir()
    logs = {"gateway": logs_dir / "gateway.log", **{n: logs_dir / f"{n}.log" for n in fed.node_configs}}
    with ExitStack() as stack:
        gateway = start_server(
            "gateway", fed.gateway_config, port_of(fed.layout.gateway.endpoint), logs["gateway"]
        )
        stack.callback(stop_server, gateway, timeout=15)
        processes = {"gateway": gateway}
        for node, config in fed.node_configs.items():
            processes[node] = start_server("node", config, fed.layout.nodes[node].port, logs[node])
            stack.callback(stop_server, processes[node], timeout=15)
        yield SignedDemo(fed, original, signer, logs, dict(processes))
