"""The console's mirror synced through a running gateway's AuditLog service with an officer's token."""

from __future__ import annotations

import asyncio
import re
import shlex
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comity.audit.errors import LogVerificationError
from comity.core.issuer import load_issuer_key, mint_token
from comity.sdk.cli.main import app
from comity.sdk.console.mirror import Mirror
from comity.sdk.console.sources import GatewaySource
from comity.sdk.console.sync import OfficerToken
from comity.sdk.console.trust import ConsoleTrust
from comity.sdk.console.verifier import MirrorVerifier
from comity.sdk.demo.run import RunningFederation, run_scenario, scenarios
from comity.sdk.profile import load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
runner = CliRunner()


async def _traffic(running: RunningFederation) -> None:
    fed = running.federation
    for s in scenarios(fed):
        if "RCMP" in s.title or "minor" in s.title:
            async with load_profile(fed.profiles[s.agency]).async_client() as client:
                await run_scenario(client, fed, s)


async def _invoke(args: list[str]) -> tuple[int, str]:
    result = await asyncio.to_thread(runner.invoke, app, args, env={"COLUMNS": "250"})
    return result.exit_code, result.output


def _size(out: str) -> int:
    found = re.search(r"up to size (\d+)", out)
    assert found, out
    return int(found.group(1))


def _guide_command(running: RunningFederation, mirror: Path, token: Path) -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    block = text.split("<!-- console-example -->", 1)[1].split("```console", 1)[1].split("```", 1)[0]
    line = " ".join(part.strip().rstrip("\\") for part in block.strip().splitlines())
    assert line.startswith("$ comity ")
    fed = running.federation
    line = line.replace("GATEWAY", fed.layout.gateway.endpoint).replace("DIR/console.db", str(mirror))
    line = line.replace("DIR/tokens/ca.rcmp-legal.jwt", str(token)).replace("DIR", str(fed.directory))
    return shlex.split(line)[2:]


async def test_the_guides_command_syncs_through_the_gateway_and_survives_token_expiry(
    running: RunningFederation, tmp_path: Path
) -> None:
    await _traffic(running)
    fed = running.federation
    token = tmp_path / "officer.jwt"
    token.write_text(fed.officer_tokens["ca.rcmp"].read_text())
    mirror = tmp_path / "console.db"
    args = _guide_command(running, mirror, token)
    for _ in range(40):  # the witnesses cosign the first entries within the quorum's bound
        code, out = await _invoke(args)
        assert code == 0 or "carries no witness quorum" in out, out
        # Until the witnesses reach the traffic, the newest cosigned checkpoint may be the empty log's.
        if code == 0 and _size(out) > 0:
            break
        await asyncio.sleep(0.5)
    assert code == 0, out
    first = _size(out)
    assert "entries fetched and staged" in out and "cosigned by" in out

    agency = fed.layout.agencies["ca.rcmp"]
    now = datetime.now(UTC)

    def officer(at: datetime, ttl: timedelta) -> str:
        key = load_issuer_key(agency.issuer_key)
        return mint_token(
            key, issuer=agency.issuer, subject=agency.legal_officer, audience=agency.audience, ttl=ttl, now=at
        )

    token.write_text(officer(now - timedelta(hours=2), timedelta(minutes=10)))
    await _traffic(running)
    code, out = await _invoke(args)
    assert code != 0
    said = " ".join(out.split())
    assert "token expired at" in said and "put a fresh one in" in said and "Traceback" not in said
    token.write_text(officer(now, timedelta(hours=1)))  # what the identity provider's client would do
    for _ in range(40):  # the witnesses cosign the new entries within the quorum's bound
        code, out = await _invoke(args)
        assert code == 0 or "carries no witness quorum" in out, out
        if code == 0 and _size(out) > first:
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"the mirror did not grow past {first}: {out}")


async def test_a_mirror_edited_on_disk_is_located_with_the_gateways_proofs(
    running: RunningFederation, tmp_path: Path
) -> None:
    await _traffic(running)
    fed = running.federation
    trust = ConsoleTrust.load(fed.layout.federation_file)
    token = OfficerToken(file=fed.officer_tokens["us.fbi"])
    source = GatewaySource(
        fed.layout.gateway.endpoint, root_certificates=fed.layout.gateway.ca_cert.read_bytes(), token=token
    )
    mirror = Mirror(tmp_path / "m.db", country_of=trust.country_of)
    verifier = MirrorVerifier(mirror, source, log_key=trust.log_key, quorum=trust.quorum)
    try:
        result = await asyncio.to_thread(verifier.sync)
        assert result.size >= 4
        bad = result.size // 2
        db = sqlite3.connect(mirror.path)
        # An attacker who edits the mirror can edit whatever hashes it stored too: none are used.
        db.execute(
            "UPDATE entry_data SET data = CAST(replace(CAST(data AS TEXT), 'Z\"', 'Z \"') AS BLOB)"
            " WHERE idx = ?",
            (bad,),
        )
        db.commit()
        db.close()
        with pytest.raises(LogVerificationError, match=f"entry {bad} in the mirror was altered") as info:
            await asyncio.to_thread(verifier.check_mirror)
        assert info.value.entry_index == bad
    finally:
        source.close()
