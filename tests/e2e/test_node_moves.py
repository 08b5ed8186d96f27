"""A node's place in the federation file changes while the gateway runs (real processes).

The US node moves to a new port (the same data, served by a new process there; the old one is
stopped): once a signed next version names the new endpoint, queries reach the node there without
a gateway restart. A version whose certificate for the node is not the one the node shows makes
its queries fail (the TLS handshake is refused), and one whose pin matches no certificate in the
node's tls_cert file makes them refused with NODE_CERTIFICATE_UNPINNED: never sent to the node
over the channel of the version before.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from served import start_server, stop_server
from signed_demo import SignedDemo, signed_demo

from comity.core import errors
from comity.sdk.demo.run import Outcome, run_scenario, scenarios
from comity.sdk.demo.setup import DemoFederation
from comity.sdk.profile import load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEADLINE = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Moving:
    demo: SignedDemo
    text: str  # the version in use
    version: int = 1

    @property
    def fed(self) -> DemoFederation:
        return self.demo.fed

    def publish(self, text: str) -> None:
        """``text`` as the next signed version; returns once the gateway has taken it."""
        self.version += 1
        self.text = re.sub(r"(?m)^version = \d+$", f"version = {self.version}", text, count=1)
        self.demo.publish(self.text, signer=self.demo.signer)
        self.demo.wait_said("gateway", f"now version {self.version}", 15)

    def said(self, name: str) -> str:
        return self.demo.said(name)

    def us_entry(self, **fields: str) -> str:
        """The version in use with the US node's ``fields`` replaced."""
        text = self.text
        entry = re.search(r'\[\[members.nodes\]\]\nid = "us-node"\n(?:\w+ = .*\n)+', text)
        assert entry
        new = entry.group(0)
        for name, value in fields.items():
            new, n = re.subn(rf"(?m)^{name} = .*$", f'{name} = "{value}"', new, count=1)
            assert n == 1, name
        return text.replace(entry.group(0), new, 1)


@pytest.fixture(scope="module")
def moving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moving]:
    extra = f"\n[limits]\nnode_deadline_seconds = {DEADLINE}\n"
    with signed_demo(Path(tmp_path_factory.mktemp("moves")), seed=17, gateway_extra=extra) as demo:
        running = Moving(demo, demo.fed.layout.federation_file.read_text())
        try:
            yield running
        finally:
            stop_server(demo.processes["us-node"])  # the moved one, when the test started it


async def _query(moving: Moving) -> Outcome:
    s = next(x for x in scenarios(moving.fed) if x.title.startswith("RCMP fetches"))
    async with load_profile(moving.fed.profiles["ca.rcmp"]).async_client() as client:
        return await run_scenario(client, moving.fed, s)


async def _answered(moving: Moving) -> None:
    for _ in range(50):  # the nodes' first queries may race their start
        outcome = await _query(moving)
        if outcome.result is not None:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not answered: {outcome.error}")


async def test_a_node_moved_to_a_new_port_is_reached_there_without_a_gateway_restart(moving: Moving) -> None:
    await _answered(moving)
    # The node moves: its process on the old port stops, one on the new port serves the same data.
    new_port = _free_port()
    config = moving.fed.node_configs["us-node"]
    moved = config.with_name("us-node-moved.toml")
    moved.write_text(re.sub(r'(?m)^listen = ".*"$', f'listen = "127.0.0.1:{new_port}"', config.read_text()))
    processes = moving.demo.processes
    stop_server(processes["us-node"])
    processes["us-node"] = start_server("node", moved, new_port, moving.demo.logs["us-node"])
    stranded = await _query(moving)  # the file still names the old port
    assert isinstance(stranded.error, errors.Unavailable), stranded.error

    await asyncio.to_thread(moving.publish, moving.us_entry(endpoint=f"127.0.0.1:{new_port}"))
    outcome = await _query(moving)
    assert outcome.result is not None, outcome.error
    assert f"node us-node: now routed to 127.0.0.1:{new_port}" in moving.said("gateway")
    assert processes["gateway"].poll() is None  # the same gateway process throughout


def _pin(text: str, node: str) -> str:
    found = re.search(rf'id = "{node}"\n(?:\w+ = .*\n)*?tls_cert_sha256 = "([0-9a-f]+)"', text)
    assert found, node
    return found.group(1)


async def test_a_certificate_the_node_does_not_show_is_refused_not_bypassed(moving: Moving) -> None:
    await _answered(moving)
    us_pin, ca_pin = _pin(moving.text, "us-node"), _pin(moving.text, "ca-node")

    # The file now trusts another certificate for the US node (the CA node's): the one the node
    # shows fails the TLS handshake, so nothing is sent to it.
    await asyncio.to_thread(
        moving.publish, moving.us_entry(tls_cert="pki/ca/ca-node.crt", tls_cert_sha256=ca_pin)
    )
    outcome = await _query(moving)
    assert isinstance(outcome.error, errors.Unavailable), outcome.error
    assert f"could not be reached within {DEADLINE / 2:g} s, so nothing was sent" in outcome.error.message

    # A pin that matches no certificate in the node's tls_cert file: refused by name, with an alert.
    await asyncio.to_thread(
        moving.publish, moving.us_entry(tls_cert="pki/us/us-node.crt", tls_cert_sha256="ab" * 32)
    )
    outcome = await _query(moving)
    assert outcome.error is not None
    assert outcome.error.code == grpc.StatusCode.UNAVAILABLE
    assert outcome.error.check_codes == ["NODE_CERTIFICATE_UNPINNED"], outcome.error.message
    assert f"version {moving.version}" in outcome.error.message
    assert "ALERT: federation file version" in moving.said("gateway")
    assert "node us-node is not routed to" in moving.said("gateway")

    # Its own certificate and pin again: answered.
    await asyncio.to_thread(moving.publish, moving.us_entry(tls_cert_sha256=us_pin))
    outcome = await _query(moving)
    assert outcome.result is not None, outcome.error
