"""Three `comity gateway serve` processes over one PostgreSQL database apply one refusal limit.

Signed garbage from one investigator is sent to all three replicas at once. The refusals are
counted in the log database, in each refusal entry's own transaction: exactly the limit of
them is logged, whichever replicas they reached, every other request is RESOURCE_EXHAUSTED,
and each replica's aggregate ``throttled`` entry (written when it stops) counts the requests
it throttled, together all of them. Another agency's investigator is not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from served import gateway_on_postgres, port_of, replica_configs, serving

from bench.federation import own_database
from comity.audit.store import LogStore
from comity.core.dsse import PAYLOAD_QUERY, sign_envelope
from comity.sdk.demo.setup import DemoFederation, build_demo_federation, free_ports
from comity.sdk.profile import load_profile
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

PER_INVESTIGATOR = 5
PER_REPLICA = 12


@pytest.fixture
def federation(postgres_url: str, tmp_path: Path) -> Iterator[tuple[DemoFederation, str, list[Path]]]:
    fed = build_demo_federation(tmp_path / "fed", people=10, seed=3)
    with own_database(postgres_url, "comity_limits") as url:
        text = gateway_on_postgres(fed.gateway_config.read_text(), url)
        text += (
            f"\n[limits]\nrefusal_window_seconds = 86400\nrefusals_per_investigator = {PER_INVESTIGATOR}\n"
            "refusals_per_agency = 100\n"
        )
        ports = [port_of(fed.layout.gateway.endpoint), *free_ports(2)]
        yield fed, url, replica_configs(fed.gateway_config, text, ports)


async def _flood(fed: DemoFederation, agency: str, port: int, count: int, tag: str) -> list[grpc.StatusCode]:
    """``count`` signed but undecodable queries from ``agency``'s investigator, one at a time."""
    profile = load_profile(fed.profiles[agency])
    key, token = profile.identity().signing_key, profile.token()
    creds = grpc.ssl_channel_credentials(root_certificates=fed.layout.gateway.ca_cert.read_bytes())
    codes = []
    # The gateway's certificate names the federation's gateway endpoint's host: 127.0.0.1.
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        stub = pb_grpc.GatewayStub(channel)
        for i in range(count):
            garbage = sign_envelope(PAYLOAD_QUERY, f"\xff garbage {tag} {i}".encode(), key)
            try:
                await stub.Submit(
                    pb.SubmitRequest(signed_query=garbage),
                    timeout=30,
                    metadata=(("authorization", f"Bearer {token}"),),
                )
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
    return codes


def _entries(url: str) -> list[dict[str, object]]:
    store = LogStore.open(url, create=False)
    try:
        return [json.loads(e) for e in store.entries(0, store.tree_size())]
    finally:
        store.close()


async def test_three_replicas_log_exactly_one_limit_of_refusals(
    federation: tuple[DemoFederation, str, list[Path]],
) -> None:
    fed, url, configs = federation
    ports = [port_of(re.search(r'(?m)^listen = "(.*)"$', c.read_text())[1]) for c in configs]  # type: ignore[index]
    with contextlib.ExitStack() as stack:
        processes: list[subprocess.Popen[bytes]] = [
            stack.enter_context(serving("gateway", c, p)) for c, p in zip(configs, ports, strict=True)
        ]
        runs = await asyncio.gather(
            *(_flood(fed, "us.fbi", port, PER_REPLICA, f"r{i}") for i, port in enumerate(ports))
        )
        other = await _flood(fed, "ca.rcmp", ports[2], 1, "other")
        for process in processes:  # stopped gently: each writes its window's aggregate entry
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    codes = [c for run in runs for c in run]
    assert codes.count(grpc.StatusCode.INVALID_ARGUMENT) == PER_INVESTIGATOR, codes
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 3 * PER_REPLICA - PER_INVESTIGATOR
    assert other == [grpc.StatusCode.INVALID_ARGUMENT]
    entries = _entries(url)
    refused = [e for e in entries if e["kind"] == "refused"]
    investigator = load_profile(fed.profiles["us.fbi"]).identity().investigator
    assert len([e for e in refused if e["investigator"] == investigator]) == PER_INVESTIGATOR
    throttled = [e for e in entries if e["kind"] == "throttled"]
    assert 1 <= len(throttled) <= 3
    assert sum(int(e["count"]) for e in throttled) == 3 * PER_REPLICA - PER_INVESTIGATOR  # type: ignore[call-overload]
