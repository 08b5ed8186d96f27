"""Who reads what: each country's legal officers read the entries of their own agreements only.

Three countries (US–CA and US–GB agreements, none between CA and GB), a real gateway and nodes
on loopback with TLS; officers read through the AuditLog service with their own tokens. A GB
officer gets the US–CA entries withheld (leaf hash only) by range, by index, by query and in
the console, and still verifies the whole log; a tampered withheld leaf hash is caught.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from starlette.testclient import TestClient
from typer.testing import CliRunner

from comity.audit.checkpoint import Checkpoint
from comity.audit.errors import LogVerificationError
from comity.audit.events import DecisionEvent, decode_event
from comity.audit.note import Note
from comity.audit.proof import verify_inclusion
from comity.audit.quorum import Quorum
from comity.audit.readers import Readership
from comity.audit.rfc6962 import hash_leaf
from comity.core.errors import ConfigError, PermissionDenied
from comity.core.federation import Federation
from comity.sdk.auditor import AuditClient, verify_remote
from comity.sdk.cli.main import app
from comity.sdk.console.app import Console, make_app
from comity.sdk.console.auth import Sessions
from comity.sdk.console.mirror import WITHHELD, Mirror, Withheld
from comity.sdk.console.receipt_check import _proved
from comity.sdk.console.sources import GatewaySource
from comity.sdk.console.sync import BackgroundSync, OfficerToken
from comity.sdk.console.trust import ConsoleTrust
from comity.sdk.console.verifier import MirrorVerifier
from comity.sdk.demo.run import Outcome, RunningFederation, run_scenario, running_federation, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.profile import load_profile
from comity.v1 import comity_pb2 as pb
from tests.e2e.test_three_countries import _gb_scenario
from tests.e2e.three_countries import third_country_bundles

pytestmark = pytest.mark.asyncio(loop_scope="module")
runner = CliRunner()


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    bundles = third_country_bundles(tmp_path_factory.mktemp("bundles"))
    folder = next(iter(bundles.values())).path.parent
    return build_demo_federation(
        tmp_path_factory.mktemp("three") / "fed",
        people=30,
        seed=11,
        countries=("US", "CA", "GB"),
        bundles=[folder],
    )


async def _run(fed: DemoFederation, s: object) -> Outcome:
    async with load_profile(fed.profiles[s.agency]).async_client() as client:  # type: ignore[attr-defined]
        return await run_scenario(client, fed, s)  # type: ignore[arg-type]


RECEIPTS: dict[str, pb.Receipt] = {}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def running(three: DemoFederation) -> AsyncIterator[RunningFederation]:
    async with running_federation(three) as r:
        fed = r.federation
        rcmp = await _run(fed, next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches")))
        assert rcmp.result is not None, rcmp.error
        RECEIPTS["us-ca"] = rcmp.result.receipt
        await _run(fed, _gb_scenario(fed, "us-node", "GB-WMC-2026-0201"))
        await _run(fed, _gb_scenario(fed, "ca-node", "GB-WMC-2026-0202"))  # NO_AGREEMENT
        yield r


def _client(fed: DemoFederation, agency: str) -> AuditClient:
    return AuditClient(
        fed.layout.gateway.endpoint,
        root_certificates=fed.layout.gateway.ca_cert.read_bytes(),
        token=fed.officer_tokens[agency].read_text().strip(),
    )


async def _quorum_size(fed: DemoFederation) -> int:
    """The size of a quorum checkpoint covering all the traffic (witnesses cosign within the bound)."""
    client = _client(fed, "us.fbi")
    try:
        for _ in range(80):
            response = await asyncio.to_thread(client.checkpoint)
            if response.log_size and response.checkpoint.signed_note and response.log_size == _size(response):
                return response.log_size
            await asyncio.sleep(0.25)
    finally:
        client.close()
    raise AssertionError("no quorum checkpoint covers the traffic")


def _size(response: pb.CheckpointResponse) -> int:
    return int(response.checkpoint.signed_note.decode().splitlines()[1])


def _all(fed: DemoFederation, agency: str, size: int) -> list[pb.LogEntry]:
    client = _client(fed, agency)
    try:
        return list(client.entries(0, size))
    finally:
        client.close()


def _agreement(entry: pb.LogEntry) -> str | None:
    event = decode_event(entry.data)
    return event.agreement if isinstance(event, DecisionEvent) else None


async def test_a_gb_officer_reads_the_us_gb_entries_and_not_the_us_ca_ones(
    running: RunningFederation,
) -> None:
    fed = running.federation
    size = await _quorum_size(fed)
    us = await asyncio.to_thread(_all, fed, "us.fbi", size)
    gb = await asyncio.to_thread(_all, fed, "gb.nca", size)
    us_ca = [e.index for e in us if not e.withheld and _agreement(e) == "us-ca-agreement"]
    us_gb = [e.index for e in us if not e.withheld and _agreement(e) == "us-gb-agreement"]
    assert us_ca and us_gb
    # The US officer reads both of its agreements' decisions; the GB officer only US–GB's.
    for i in us_ca:
        assert gb[i].withheld and not gb[i].data and len(gb[i].leaf_hash) == 32
    for i in us_gb:
        assert not gb[i].withheld and gb[i].data == us[i].data
    # A withheld entry's leaf hash is the entry's: what the US officer reads hashes to it.
    assert all(gb[i].leaf_hash == hash_leaf(us[i].data) for i in us_ca)
    # A whole query is withheld, not only its decision: none of the GB officer's entries names it.
    us_ca_queries = {decode_event(us[i].data).query_id for i in us_ca}  # type: ignore[union-attr]
    readable = [decode_event(e.data) for e in gb if not e.withheld]
    assert not {getattr(e, "query_id", "") for e in readable} & us_ca_queries
    # The NO_AGREEMENT refusal of GB → CA: the GB and CA officers read it (Canada was asked), the US
    # officer does not.
    refused = [i for i, e in enumerate(gb) if not e.withheld and decode_event(e.data).kind == "refused"]
    assert refused and all(us[i].withheld for i in refused)
    assert all(decode_event(gb[i].data).target_node == "ca-node" for i in refused)  # type: ignore[union-attr]
    ca = await asyncio.to_thread(_all, fed, "ca.rcmp", size)
    assert not any(ca[i].withheld for i in refused + us_ca) and all(ca[i].withheld for i in us_gb)


async def test_by_index_the_us_ca_entry_is_withheld_from_gb_and_served_to_the_us(
    running: RunningFederation,
) -> None:
    fed = running.federation
    size = await _quorum_size(fed)
    us = await asyncio.to_thread(_all, fed, "us.fbi", size)
    i = next(e.index for e in us if not e.withheld and _agreement(e) == "us-ca-agreement")
    gb_client, us_client = _client(fed, "gb.nca"), _client(fed, "us.fbi")
    try:
        (gb_one,) = await asyncio.to_thread(lambda: list(gb_client.entries(i, i + 1)))
        (us_one,) = await asyncio.to_thread(lambda: list(us_client.entries(i, i + 1)))
        # Proofs stay public: the withheld leaf's inclusion proof is served to anyone.
        proof = await asyncio.to_thread(gb_client.inclusion, i, size)
        note = (await asyncio.to_thread(gb_client.checkpoint, size)).checkpoint.signed_note
    finally:
        gb_client.close()
        us_client.close()
    assert gb_one.withheld and not gb_one.data
    assert not us_one.withheld and _agreement(us_one) == "us-ca-agreement"
    root = Checkpoint.from_text(Note.parse(note).text).root_hash
    verify_inclusion(gb_one.leaf_hash, i, size, proof, root)


async def test_the_gb_officer_verifies_the_whole_log_and_fingerprints_match_across_parties(
    running: RunningFederation, tmp_path: Path
) -> None:
    fed = running.federation
    await _quorum_size(fed)
    federation = Federation.load(fed.layout.federation_file)
    trust = ConsoleTrust.load(fed.layout.federation_file)
    reports = {}
    for agency in ("gb.nca", "us.fbi", "ca.rcmp"):
        client = _client(fed, agency)
        try:
            reports[agency] = await asyncio.to_thread(
                lambda c=client, a=agency: verify_remote(  # type: ignore[misc]
                    c,
                    log_key=trust.log_key,
                    state=tmp_path / f"{a}.state",
                    quorum=Quorum.of_federation(federation),
                    readership=Readership.of_federation(federation),
                )
            )
        finally:
            client.close()
    gb, us, ca = reports["gb.nca"], reports["us.fbi"], reports["ca.rcmp"]
    assert gb.withheld > 0 and us.withheld > 0 and ca.withheld > 0
    # GB → CA was refused NO_AGREEMENT: both countries read that refusal.
    assert {label for label, _, _ in gb.readable} == {"GB+US", "CA+GB"}
    assert {label for label, _, _ in ca.readable} == {"CA+US", "CA+GB"}
    assert gb.tree_size == us.tree_size == ca.tree_size  # no traffic meanwhile
    # What two parties of an agreement were both shown is the same: same count, same fingerprint.
    by = {a: {label: (n, f) for label, n, f in r.readable} for a, r in reports.items()}
    assert by["us.fbi"]["CA+US"] == by["ca.rcmp"]["CA+US"]
    assert by["us.fbi"]["GB+US"] == by["gb.nca"]["GB+US"]
    assert by["gb.nca"]["CA+GB"] == by["ca.rcmp"]["CA+GB"]
    assert set(by["us.fbi"]) == {"CA+US", "GB+US"}


class _TamperedLeaf(AuditClient):
    """A gateway that serves one withheld entry with another leaf hash."""

    def entries(self, start: int, end: int) -> Iterator[pb.LogEntry]:
        done = False
        for entry in super().entries(start, end):
            if entry.withheld and not done:
                done = True
                forged = bytearray(entry.leaf_hash)
                forged[0] ^= 1
                entry = pb.LogEntry(index=entry.index, withheld=True, leaf_hash=bytes(forged))
            yield entry


async def test_a_tampered_withheld_leaf_hash_fails_verification(
    running: RunningFederation, tmp_path: Path
) -> None:
    fed = running.federation
    await _quorum_size(fed)
    federation = Federation.load(fed.layout.federation_file)
    trust = ConsoleTrust.load(fed.layout.federation_file)
    client = _TamperedLeaf(
        fed.layout.gateway.endpoint,
        root_certificates=fed.layout.gateway.ca_cert.read_bytes(),
        token=fed.officer_tokens["gb.nca"].read_text().strip(),
    )
    try:
        with pytest.raises(LogVerificationError, match="the history was rewritten"):
            await asyncio.to_thread(
                verify_remote,
                client,
                log_key=trust.log_key,
                state=tmp_path / "state",
                quorum=Quorum.of_federation(federation),
            )
    finally:
        client.close()


def _gb_console(fed: DemoFederation, path: Path) -> tuple[MirrorVerifier, GatewaySource, ConsoleTrust]:
    trust = ConsoleTrust.load(fed.layout.federation_file)
    source = GatewaySource(
        fed.layout.gateway.endpoint,
        root_certificates=fed.layout.gateway.ca_cert.read_bytes(),
        token=OfficerToken(file=fed.officer_tokens["gb.nca"]),
    )
    mirror = Mirror(path, country_of=trust.country_of, reader="GB")
    verifier = MirrorVerifier(
        mirror,
        source,
        log_key=trust.log_key,
        quorum=trust.quorum,
        readership=Readership.of_federation(trust.federation),
    )
    return verifier, source, trust


async def _synced(verifier: MirrorVerifier) -> int:
    for _ in range(80):
        try:
            return (await asyncio.to_thread(verifier.sync)).size
        except Exception as exc:  # the witnesses cosign the newest entries within the quorum's bound
            if "carries no witness quorum" not in str(exc):
                raise
            await asyncio.sleep(0.25)
    raise AssertionError("no quorum checkpoint")


async def test_the_gb_console_holds_the_us_ca_entries_as_leaf_hashes_only(
    running: RunningFederation, tmp_path: Path
) -> None:
    fed = running.federation
    size = await _quorum_size(fed)
    us = await asyncio.to_thread(_all, fed, "us.fbi", size)
    i = next(e.index for e in us if not e.withheld and _agreement(e) == "us-ca-agreement")
    query_id = decode_event(us[i].data).query_id  # type: ignore[union-attr]
    verifier, source, trust = _gb_console(fed, tmp_path / "gb.db")
    try:
        await _synced(verifier)
        # The withheld rows verify by their hashes, again from disk.
        await asyncio.to_thread(verifier.check_mirror)
        mirror = verifier.mirror
        row = mirror.entry(i)
        assert row is not None and row.kind == WITHHELD and row.data == b"" and row.event is None
        assert mirror.query_entries(query_id) == []
        assert mirror.withheld_count() == verifier.readable.withheld > 0
        db = sqlite3.connect(mirror.path)
        assert b"us-ca-agreement" not in b"".join(r[0] for r in db.execute("SELECT data FROM entry_data"))
        # The pages: a GB officer signs in and finds nothing of the US–CA query.
        sync = BackgroundSync(verifier)
        await asyncio.to_thread(sync.run_round)
        assert sync.status.withheld == mirror.withheld_count(), sync.status
        console = Console(
            mirror=mirror,
            sync=sync,
            sessions=Sessions(trust.federation, audience="comity-gateway", country="GB"),
            log_origin=trust.log_key.name,
            start_sync=False,
        )
        with TestClient(make_app(console), base_url="http://127.0.0.1") as client:
            with pytest.raises(PermissionDenied, match="officer of US"):
                console.sessions.sign_in(fed.officer_tokens["us.fbi"].read_text())
            page = client.get("/signin")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            token = fed.officer_tokens["gb.nca"].read_text().strip()
            client.post("/signin", data={"csrf": csrf, "token": token})
            assert client.get(f"/queries/{query_id}").status_code == 404
            entry = client.get(f"/entries/{i}")
            assert entry.status_code == 200 and "not yours to read" in entry.text
            assert query_id not in entry.text
            listing = client.get("/entries")
            assert "withheld from your country" in listing.text and query_id not in listing.text
            assert client.get("/entries", params={"query_id": query_id}).text.count("No entries match") == 1
        # A receipt of the US–CA query, checked in the GB console: its entries are withheld there.
        proved = _proved(RECEIPTS["us-ca"], mirror)
        assert proved and {e.mirror for e in proved} == {"withheld"}
        # A mirror kept for GB is never opened for another country's officers.
        with pytest.raises(ConfigError, match="was made for GB's legal officers"):
            Mirror(mirror.path, country_of=trust.country_of, reader="US")
        db.execute("UPDATE withheld SET leaf = zeroblob(32) WHERE idx = ?", (i,))
        db.commit()
        db.close()
        with pytest.raises(LogVerificationError, match=f"entry {i} in the mirror was altered"):
            await asyncio.to_thread(verifier.check_mirror)
    finally:
        source.close()


class _TamperedSource(GatewaySource):
    def entries(self, start: int, end: int) -> Iterator[bytes | Withheld]:
        for item in super().entries(start, end):
            if isinstance(item, Withheld):
                item = Withheld(bytes(32))
            yield item


async def test_the_console_locates_a_withheld_leaf_hash_the_gateway_forged(
    running: RunningFederation, tmp_path: Path
) -> None:
    fed = running.federation
    await _quorum_size(fed)
    trust = ConsoleTrust.load(fed.layout.federation_file)
    source = _TamperedSource(
        fed.layout.gateway.endpoint,
        root_certificates=fed.layout.gateway.ca_cert.read_bytes(),
        token=OfficerToken(file=fed.officer_tokens["gb.nca"]),
    )
    mirror = Mirror(tmp_path / "m.db", country_of=trust.country_of, reader="GB")
    verifier = MirrorVerifier(
        mirror,
        source,
        log_key=trust.log_key,
        quorum=trust.quorum,
        readership=Readership.of_federation(trust.federation),
    )
    try:
        with pytest.raises(LogVerificationError, match="does not match quorum checkpoint") as info:
            await _synced(verifier)
        assert info.value.entry_index is not None
        assert mirror.head().size == 0  # nothing was promoted
    finally:
        source.close()


async def test_the_cli_says_how_many_entries_were_withheld(
    running: RunningFederation, tmp_path: Path
) -> None:
    fed = running.federation
    await _quorum_size(fed)
    args = [
        "audit", "verify", "-f", str(fed.layout.federation_file),
        "--gateway", fed.layout.gateway.endpoint, "--ca", str(fed.layout.gateway.ca_cert),
        "--token-file", str(fed.officer_tokens["gb.nca"]), "--state", str(tmp_path / "state"),
    ]  # fmt: skip
    result = await asyncio.to_thread(runner.invoke, app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert re.search(r"\d+ entries withheld from you", out), out
    assert "readable by GB+US:" in out and "CA+US" not in out
