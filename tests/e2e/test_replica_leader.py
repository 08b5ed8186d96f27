"""Two `comity gateway serve` processes over one PostgreSQL database: one leads the witnessing.

The first gateway started takes the leader lock and asks the nodes' witnesses to cosign; the
second stands by. Killed (SIGKILL: no goodbye), the leader's database session ends and the
lock with it; the standby takes the lead and witnesses the entries appended after the kill.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest
from served import (
    COMITY,
    gateway_on_postgres,
    listening,
    port_of,
    replica_configs,
    server_log,
    serving,
    wait_for,
)

from bench.federation import own_database
from comity.audit.store import LogStore
from comity.core.dsse import PAYLOAD_QUERY, sign_envelope
from comity.sdk.demo.setup import DemoFederation, build_demo_federation, free_ports
from comity.sdk.profile import load_profile
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc


@pytest.fixture
def federation(postgres_url: str, tmp_path: Path) -> Iterator[tuple[DemoFederation, str, list[Path]]]:
    fed = build_demo_federation(tmp_path / "fed", people=10, seed=3)
    with own_database(postgres_url, "comity_leader") as url:
        text = gateway_on_postgres(fed.gateway_config.read_text(), url)
        text += "\n[replication]\nleader_interval_seconds = 0.5\n"
        # The first to start (and lead) listens elsewhere; the federation's endpoint outlives it.
        ports = [*free_ports(1), port_of(fed.layout.gateway.endpoint)]
        yield fed, url, replica_configs(fed.gateway_config, text, ports)


def _port(config: Path) -> int:
    found = re.search(r'(?m)^listen = "(.*)"$', config.read_text())
    assert found is not None
    return port_of(found[1])


def _said(config: Path, words: str) -> bool:
    return words in server_log(config).read_text(errors="replace")


def _cosigned_size(url: str) -> int:
    store = LogStore.open(url, create=False)
    try:
        cosigned = store.cosigners()
    finally:
        store.close()
    return max((size for size, _ in cosigned), default=0)


async def _refused_once(fed: DemoFederation, port: int) -> None:
    """One signed, undecodable query: one ``refused`` entry, so the log grows by one."""
    profile = load_profile(fed.profiles["us.fbi"])
    garbage = sign_envelope(PAYLOAD_QUERY, b"\xff not a query", profile.identity().signing_key)
    creds = grpc.ssl_channel_credentials(root_certificates=fed.layout.gateway.ca_cert.read_bytes())
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pb_grpc.GatewayStub(channel).Submit(
                pb.SubmitRequest(signed_query=garbage),
                timeout=30,
                metadata=(("authorization", f"Bearer {profile.token()}"),),
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_standby_takes_over_the_witnessing_when_the_leader_is_killed(
    federation: tuple[DemoFederation, str, list[Path]],
) -> None:
    fed, url, (first, second) = federation
    with ExitStack() as stack:
        leader = stack.enter_context(serving("gateway", first, _port(first)))
        wait_for(lambda: _said(first, "now leads"), "the first gateway to lead")
        # Then the federation's endpoint, which the nodes ask at start-up, and the nodes.
        stack.enter_context(serving("gateway", second, _port(second)))
        for node, config in fed.node_configs.items():
            stack.enter_context(serving("node", config, fed.layout.nodes[node].port))
        wait_for(lambda: _said(second, "stands by"), "the second gateway to stand by")
        await _refused_once(fed, _port(second))
        wait_for(lambda: _cosigned_size(url) >= 1, "the leader to witness the log", timeout=60)
        assert not _said(second, "now leads")

        leader.kill()
        leader.wait()
        wait_for(lambda: _said(second, "now leads"), "the standby to take the lead", timeout=60)
        before = _cosigned_size(url)
        await _refused_once(fed, _port(second))
        store = LogStore.open(url, create=False)
        size = store.tree_size()
        store.close()
        assert size > before
        wait_for(lambda: _cosigned_size(url) >= size, "the new leader to witness the new entry", timeout=60)


def test_a_replicated_gateway_refuses_to_start_on_sqlite(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=5, seed=3)
    config = fed.gateway_config
    config.write_text(config.read_text() + "\n[replication]\nreplicated = true\n")
    done = subprocess.run(
        [COMITY, "gateway", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COMITY_AUDIT_URL": "", "COMITY_REPLAY_URL": ""},
    )
    assert done.returncode != 0
    said = " ".join(done.stderr.split())  # the console wraps long lines
    assert "audit.url is an SQLite file, but replication.replicated is true" in said
    assert "Traceback" not in done.stderr
    assert not listening(port_of(fed.layout.gateway.endpoint))
