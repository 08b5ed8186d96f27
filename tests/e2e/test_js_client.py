"""A JavaScript client written from docs/protocol.md queries a real federation and verifies it all.

The client (tests/interop/js) signs its queries with Node's Ed25519, talks gRPC with
@grpc/grpc-js, and checks health, reflection v1, the node's statements, the records digest and
the receipts' checkpoints, inclusion proofs and cosignatures on its own; refusals are read from
the status details. Outside CI the test skips when Node.js or the installed packages are missing;
in CI (``.ci/run`` runs ``npm ci``) it fails instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from comity.sdk.demo.run import RunningFederation, scenarios

pytestmark = pytest.mark.asyncio(loop_scope="module")

JS = Path(__file__).resolve().parents[1] / "interop" / "js"


def _node() -> str:
    node = shutil.which("node")
    missing = (
        "Node.js is not installed"
        if node is None
        else "tests/interop/js has no node_modules (run `npm ci` there)"
        if not (JS / "node_modules" / "@grpc" / "grpc-js").is_dir()
        else ""
    )
    if missing:
        if os.environ.get("CI") or os.environ.get("COMITY_REQUIRE_NODE"):
            pytest.fail(f"{missing}; CI runs the JavaScript client")
        pytest.skip(f"{missing}; the JavaScript interop client cannot run")
    assert node is not None
    return node


def _config(running: RunningFederation, tmp: Path) -> Path:
    fed = running.federation
    scenario = next(s for s in scenarios(fed) if s.title.startswith("FBI asks the Canadian node whether"))
    order = fed.orders.get(scenario.order.order_id) or fed.sign_order(scenario.order, now=datetime.now(UTC))
    agency = fed.layout.agencies["us.fbi"]
    selector_type = scenario.order.selector_types[0]
    config: dict[str, Any] = {
        "gateway": fed.layout.gateway.endpoint,
        "ca": str(fed.layout.gateway.ca_cert),
        "federation": str(fed.directory / "federation.toml"),
        "token_file": str(fed.directory / "tokens" / "us.fbi.jwt"),
        "key": str(agency.investigator_key),
        "investigator": agency.investigator,
        "agency": "us.fbi",
        "node": scenario.node,
        "order": str(order),
        "selector": {"type": selector_type.name, "value": scenario.person.selectors[selector_type]},
        "case_reference": scenario.case_reference,
        "facts": scenario.facts,
        "link": scenario.link,
        "time_range": [t.isoformat() for t in scenario.time_range],
    }
    path = tmp / "js-client.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


async def _run_client(node: str, config: Path) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        node,
        str(JS / "client.mjs"),
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.fixture(scope="module")
def node_binary() -> str:
    return _node()


async def test_js_client_queries_and_verifies_everything(
    running: RunningFederation, node_binary: str, tmp_path: Path
) -> None:
    out = await _run_client(node_binary, _config(running, tmp_path))

    assert out["health"] == "SERVING" and out["health_gateway"] == "SERVING"
    assert {"comity.v1.Gateway", "grpc.reflection.v1.ServerReflection"} <= set(out["reflection_v1"])

    hit = out["hit_check"]
    assert hit["hit"] is True and hit["hit_reference"] and hit["records"] == 0
    assert hit["entries"] == ["decision", "node_decision", "disclosed"]

    fetch = out["fetch"]
    assert fetch["records"] > 0 and fetch["entries"] == ["decision", "node_decision", "disclosed"]
    assert "NO_DEATH_PENALTY_USE" in fetch["use_restrictions"]
    assert out["stream"]["records"] > 0 and out["stream"]["batches"] >= 1
    assert out["tampering_detected"] == dict.fromkeys(
        [
            "record",
            "node_decision_missing",
            "dropped_record",
            "inclusion_proof",
            "node_statement",
            "checkpoint",
        ],
        True,
    )
    refreshed = out["refreshed"]
    assert refreshed["witnesses"] == ["ca-node", "us-node"] and refreshed["checkpoint_size"] >= 6

    policy = out["policy_refusal"]
    assert policy["code"] == "PERMISSION_DENIED" and policy["status_message_matches"]
    assert {"code": "DATA_CATEGORY_TIERS", "check": "DATA_CATEGORY_TIERS"} in policy["violations"]
    assert policy["receipt_entries"] == ["decision"]

    forged = out["signature_refusal"]
    assert forged["code"] == "UNAUTHENTICATED" and forged["status_message_matches"]
    assert [v["check"] for v in forged["violations"]] == ["QUERY_SIGNATURE"]
    assert forged["receipt_entries"] == ["refused"]  # logged under the digest of the bytes sent

    stale = out["stale_refusal"]
    assert stale["code"] == "UNAUTHENTICATED"
    assert [v["check"] for v in stale["violations"]] == ["QUERY_STALE"] and stale["status_message_matches"]
    assert stale["receipt_entries"] == ["refused"]


async def test_the_js_records_digest_is_the_nodes(running: RunningFederation, node_binary: str) -> None:
    """The digest rule of docs/protocol.md, against the Python SDK's (same records, same bytes)."""
    from comity.core.digests import records_digest
    from comity.v1 import comity_pb2 as pb

    record = pb.Record(record_id="r-1", record_type="subscriber_account", category=pb.SUBSCRIBER)
    record.observed_at.FromDatetime(datetime(2025, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC))
    record.fields.update({"zeta": "z", "alpha": "é", "empty": ""})
    bare = pb.Record(record_type="x")
    script = (
        "import { recordsDigest } from './protocol.mjs';"
        "const r = { record_id: 'r-1', record_type: 'subscriber_account', category: 'SUBSCRIBER',"
        " observed_at: { seconds: String(Date.UTC(2025, 2, 1, 12) / 1000), nanos: 500000000 },"
        " fields: { zeta: 'z', alpha: 'é', empty: '' } };"
        "process.stdout.write(recordsDigest([r, { record_type: 'x' }]).toString('hex'));"
    )
    proc = await asyncio.create_subprocess_exec(
        node_binary, "--input-type=module", "-e", script, cwd=JS, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert out.decode() == records_digest([record, bare]).hex()
