"""The legal officers' commands against the log a running federation wrote."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comity.core.errors import Unauthenticated
from comity.sdk.auditor import AuditClient
from comity.sdk.cli.main import app
from comity.sdk.demo.run import RunningFederation, run_scenario, scenarios
from comity.sdk.profile import load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")

runner = CliRunner()


async def _some_traffic(running: RunningFederation) -> None:
    fed = running.federation
    for s in scenarios(fed):
        if "RCMP" in s.title or "minor" in s.title:
            async with load_profile(fed.profiles[s.agency]).async_client() as client:
                await run_scenario(client, fed, s)


async def _invoke(args: list[str]) -> tuple[int, str]:
    # In a thread: the servers under test run on this event loop, and the CLI blocks.
    result = await asyncio.to_thread(runner.invoke, app, args, env={"COLUMNS": "250"})
    return result.exit_code, result.output


def _copy_db(source_path: Path, target_path: Path) -> None:
    # A consistent copy even while the gateway has the database open (WAL mode).
    source, target = sqlite3.connect(source_path), sqlite3.connect(target_path)
    source.backup(target)
    source.close()
    target.close()


async def test_verify_accepts_the_log_then_catches_tampering(
    running: RunningFederation, tmp_path: Path
) -> None:
    await _some_traffic(running)
    fed = running.federation
    copy = tmp_path / "audit.db"
    _copy_db(fed.audit_db, copy)
    args = [
        "audit",
        "verify",
        "-f",
        str(fed.layout.federation_file),
        "--db",
        str(copy),
        "--state",
        str(tmp_path / "s"),
    ]
    code, out = await _invoke(args)
    assert code == 0, out
    assert "verified" in out

    db = sqlite3.connect(copy)
    last = "(SELECT max(idx) FROM audit_entries)"
    db.execute(f"UPDATE audit_entries SET data = replace(data, 'DENY', 'ALLO') WHERE idx = {last}")
    db.commit()
    db.close()
    code, _ = await _invoke(args)
    assert code != 0


async def test_verify_through_the_gateway_and_show_and_export(
    running: RunningFederation, tmp_path: Path
) -> None:
    await _some_traffic(running)
    fed = running.federation
    gateway = fed.layout.gateway
    code, out = await _invoke(
        ["audit", "verify", "-f", str(fed.layout.federation_file), "--gateway", gateway.endpoint,
         "--ca", str(gateway.ca_cert), "--state", str(tmp_path / "remote-state"),
         "--token-file", str(fed.officer_tokens["ca.rcmp"])]
    )  # fmt: skip
    assert code == 0, out
    code, shown = await _invoke(["audit", "show", "--db", str(fed.audit_db), "--decision", "DENY"])
    assert code == 0, shown
    assert "SERIOUS_CRIME" in shown
    assert "ALLOW" not in shown
    code, exported = await _invoke(["audit", "export", "--db", str(fed.audit_db)])
    assert code == 0
    assert '"kind": "decision"' in exported
    # Selector values never appear in the log itself, only their salted commitments.
    person = next(s for s in scenarios(fed) if "minor" in s.title).person
    assert all(value not in exported for value in person.selectors.values())


async def test_transparency_report_counts_without_identifiers(running: RunningFederation) -> None:
    await _some_traffic(running)
    fed = running.federation
    code, out = await _invoke(["audit", "report", "--db", str(fed.audit_db), "--json"])
    assert code == 0, out
    report = json.loads(out)
    denied = [d for d in report["decisions"] if d["decision"] == "DENY"]
    assert denied and all(d["offence_class"] != "UNKNOWN" for d in report["decisions"])
    assert report["records_disclosed"].get("us-node", 0) >= 1
    person = next(s for s in scenarios(fed) if "minor" in s.title).person
    assert all(value not in out for value in person.selectors.values())
    assert "us.fbi/agent-1" not in out  # counts per agency, never per investigator


async def test_web_viewer_shows_verified_entries_read_only(running: RunningFederation) -> None:
    import threading
    import urllib.error
    import urllib.request

    from comity.audit.log import witness_verifiers
    from comity.audit.verify import verify_log
    from comity.core.federation import Federation
    from comity.sdk.receipts import log_verifier
    from comity.sdk.viewer import LogViewer, make_server

    await _some_traffic(running)
    fed = running.federation
    federation = Federation.load(fed.layout.federation_file)
    url = f"sqlite:///{fed.audit_db}"

    def verify() -> str:
        key, witnesses = log_verifier(federation), witness_verifiers(federation.witness_keys())
        return f"verified {verify_log(url, verifier_key=key, witnesses=witnesses).tree_size} entries"

    server = make_server(LogViewer(url, verify))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:

        def get(path: str) -> str:
            with urllib.request.urlopen(base + path, timeout=10) as response:
                return str(response.read().decode())

        page = await asyncio.to_thread(get, "")
        assert "verified" in page and "decision" in page
        denied = await asyncio.to_thread(get, "?decision=DENY")
        assert "SERIOUS_CRIME" in denied and "ALLOW" not in denied.split("<table>")[1]
        person = next(s for s in scenarios(fed) if "minor" in s.title).person
        assert all(value not in page for value in person.selectors.values())
        request = urllib.request.Request(base, data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)
        assert info.value.code == 501
    finally:
        server.shutdown()
        server.server_close()


async def test_only_legal_officers_read_entries_through_the_gateway(
    running: RunningFederation, tmp_path: Path
) -> None:
    await _some_traffic(running)
    fed = running.federation
    gateway = fed.layout.gateway
    base = ["audit", "verify", "-f", str(fed.layout.federation_file), "--gateway", gateway.endpoint,
            "--ca", str(gateway.ca_cert), "--state", str(tmp_path / "state")]  # fmt: skip
    code, out = await _invoke(base)
    assert code != 0
    assert "needs a legal officer's token" in out
    investigator_token = fed.directory / "tokens" / "us.fbi.jwt"
    code, out = await _invoke([*base, "--token-file", str(investigator_token)])
    assert code != 0
    assert "is an investigator" in out
    assert not (tmp_path / "state").exists()  # nothing was accepted


async def test_checkpoints_and_proofs_stay_public_entries_do_not(running: RunningFederation) -> None:
    await _some_traffic(running)
    fed = running.federation
    gateway = fed.layout.gateway
    root = gateway.ca_cert.read_bytes()
    anonymous = AuditClient(gateway.endpoint, root_certificates=root)
    officer = AuditClient(
        gateway.endpoint, root_certificates=root, token=fed.officer_tokens["us.fbi"].read_text().strip()
    )
    try:
        size = await asyncio.to_thread(lambda: open_checkpoint_size(anonymous))
        assert size >= 2
        assert await asyncio.to_thread(anonymous.consistency, 1, size)
        with pytest.raises(Unauthenticated, match="no bearer token"):
            await asyncio.to_thread(lambda: list(anonymous.entries(0, 1)))
        entries = await asyncio.to_thread(lambda: list(officer.entries(0, size)))
        assert [e.index for e in entries] == list(range(size))
    finally:
        anonymous.close()
        officer.close()


def open_checkpoint_size(client: AuditClient) -> int:
    note = client.checkpoint().checkpoint.signed_note.decode()
    return int(note.splitlines()[1])
