"""Retention: openings of old decisions deleted, held orders and recent ones kept, the log still verifies.

The gateway's own pruning runs only on the replica that leads.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comity.audit import events
from comity.audit.commitments import CommitmentOpening
from comity.audit.log import TransparencyLog
from comity.audit.retention import prune_openings
from comity.audit.store import LogStore
from comity.audit.verify import verify_log
from comity.core.keys import SigningKey
from comity.gateway.leadership import Leadership
from comity.gateway.pruning import Pruning
from comity.sdk.cli.main import app

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
ORIGIN = "comity.test/retention"


def _decision(order_id: str, at: datetime) -> tuple[bytes, list[CommitmentOpening]]:
    return events.decision_event(
        query_id=f"q-{order_id}-{at.isoformat()}",
        query_digest=b"\x03" * 32,
        at=at,
        investigator="us.fbi/agent-1",
        agency="us.fbi",
        target_node="ca-node",
        order_id=order_id,
        offence_code="18 USC 1030(a)(7)",
        categories=["SUBSCRIBER"],
        allowed=True,
        rule_codes=[],
        bundle_digest="sha256:00",
        selectors=[("EMAIL", f"{order_id.lower()}@example.org"), ("PHONE", "+15555550100")],
    )


async def _build(url: str, key: SigningKey, now: datetime = NOW, *, prefix: str = "audit_") -> None:
    log = await TransparencyLog.open(url, origin=ORIGIN, key=key, batch_interval=0, table_prefix=prefix)
    try:
        for order_id, age_days in (("OLD-1", 800), ("HELD-1", 790), ("OLD-2", 760), ("NEW-1", 30)):
            entry, openings = _decision(order_id, now - timedelta(days=age_days))
            await log.append(entry, openings=openings)
        refused = events.refused_event(
            query_id="q-r", query_digest=b"\x04" * 32, at=now - timedelta(days=1),
            investigator="us.fbi/agent-1", agency="us.fbi", reason_code="INVALID_ARGUMENT:ReplayError",
        )  # fmt: skip
        await log.append(refused)
    finally:
        await log.close()


@pytest.mark.asyncio
async def test_old_openings_go_held_and_recent_ones_stay_and_the_log_verifies(
    log_url: tuple[str, str],
) -> None:
    key = SigningKey.generate(ORIGIN)
    url, prefix = log_url
    await _build(url, key, prefix=prefix)
    store = LogStore.open(url, table_prefix=prefix, create=False)
    try:
        cutoff = NOW - timedelta(days=730)
        dry = prune_openings(store, cutoff=cutoff, hold_orders={"HELD-1"}, dry_run=True)
        assert (
            dry.entries_before_cutoff,
            dry.decisions_pruned,
            dry.decisions_held,
            dry.openings_deleted,
        ) == (3, 2, 1, 0)
        assert len(store.openings(0)) == 2  # a dry run deletes nothing
        report = prune_openings(store, cutoff=cutoff, hold_orders={"HELD-1"})
        assert report.openings_deleted == 4
        assert [len(store.openings(i)) for i in range(4)] == [0, 2, 0, 2]
        assert prune_openings(store, cutoff=cutoff, hold_orders={"HELD-1"}).openings_deleted == 0
    finally:
        store.close()
    verified = verify_log(url, verifier_key=_verifier(key), table_prefix=prefix)
    assert verified.tree_size == 5
    assert verified.openings == 4  # the remaining ones still open their commitments


def _verifier(key: SigningKey) -> str:
    from comity.audit.note import Ed25519Verifier

    return Ed25519Verifier(ORIGIN, key.verifying_key.public_key).to_text()


@pytest.mark.asyncio
async def test_the_prune_command(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    await _build(f"sqlite:///{db}", SigningKey.generate(ORIGIN), now=datetime.now(UTC))
    runner = CliRunner()
    # A period longer than the log's age keeps everything.
    result = runner.invoke(app, ["audit", "prune", "--db", str(db), "--older-than-days", "3650"])
    assert result.exit_code == 0, result.output
    assert "deleted the selector openings of 0 decision(s)" in result.output
    result = runner.invoke(
        app, ["audit", "prune", "--db", str(db), "--older-than-days", "7", "--hold", "OLD-2", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "would delete the selector openings of 3 decision(s)" in result.output
    assert "1 held" in result.output


@pytest.mark.asyncio
async def test_the_gateway_prunes_only_while_it_leads(postgres_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}_"
    await _build(postgres_url, SigningKey.generate(ORIGIN), prefix=prefix)
    store = LogStore.open(postgres_url, table_prefix=prefix, create=False)
    leader = Leadership(postgres_url, interval=1.0, table_prefix=prefix)
    standby = Leadership(postgres_url, interval=1.0, table_prefix=prefix)
    try:
        assert leader.try_lead() and not standby.try_lead()
        for claim in (standby, leader):
            claim_pruning = Pruning(
                store,
                claim,
                period=timedelta(days=730),
                interval=60,
                hold_orders={"HELD-1"},
                clock=lambda: NOW,
            )
            report = claim_pruning.prune()
            if claim is standby:
                assert report is None  # stands by: nothing scanned, nothing deleted
                assert len(store.openings(0)) == 2
            else:
                assert report is not None and report.decisions_pruned == 2 and report.decisions_held == 1
                assert store.openings(0) == [] and len(store.openings(1)) == 2
    finally:
        leader._release()
        standby._release()
        store.drop()
        store.close()
