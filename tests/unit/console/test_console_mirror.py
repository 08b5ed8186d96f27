"""The console's mirror: incremental verification, located bad entries, keyset paging and filters."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bench.console_log import BuiltLog, build_console_log
from comity.audit.checkpoint import Checkpoint, SignedCheckpoint
from comity.audit.errors import AuditUnavailable, LogVerificationError
from comity.audit.note import Note
from comity.audit.rfc6962 import EMPTY_ROOT
from comity.sdk.console.mirror import Filters, Mirror
from comity.sdk.console.sources import DatabaseSource
from comity.sdk.console.sync import BackgroundSync
from comity.sdk.console.trust import ConsoleTrust
from comity.sdk.console.verifier import MirrorVerifier
from comity.sdk.demo.setup import DemoFederation


def _verifier(demo: DemoFederation, log: Path, mirror_path: Path) -> MirrorVerifier:
    trust = ConsoleTrust.load(demo.layout.federation_file)
    mirror = Mirror(mirror_path, country_of=trust.country_of)
    source = DatabaseSource(f"sqlite:///{log}", quorum=trust.quorum, log_key=trust.log_key)
    return MirrorVerifier(mirror, source, log_key=trust.log_key, quorum=trust.quorum)


def test_a_sync_round_verifies_every_entry_then_only_new_ones(
    demo: DemoFederation, built: BuiltLog, log_copy: Path, tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    verifier = _verifier(demo, log_copy, tmp_path / "mirror.db")
    verifier._progress = lambda done, total: seen.append((done, total))
    result = verifier.sync()
    assert (result.size, result.added) == (built.size, built.size)
    assert len(result.witnesses) == 2
    assert seen[-1] == (built.size, built.size) and len(seen) >= built.size // 1000
    assert verifier.mirror.head().size == built.size
    again = verifier.sync()
    assert again.added == 0
    verifier.check_mirror()  # an untouched mirror passes its own check


def test_entries_the_source_altered_are_never_shown_and_the_first_is_located(
    demo: DemoFederation, log_copy: Path, tmp_path: Path
) -> None:
    db = sqlite3.connect(log_copy)
    db.execute(
        "UPDATE audit_entries SET data = CAST(replace(CAST(data AS TEXT), '\"v\"', '\"V\"') AS BLOB)"
        " WHERE idx = 1234"
    )
    db.commit()
    db.close()
    verifier = _verifier(demo, log_copy, tmp_path / "mirror.db")
    with pytest.raises(LogVerificationError, match=r"entry 1234 .* does not match quorum checkpoint") as info:
        verifier.sync()
    assert info.value.entry_index == 1234
    assert verifier.mirror.head().size == 0
    assert verifier.mirror.page(Filters.parse({})).total == 0


@pytest.mark.parametrize("idx", [0, 1, 777, 2047, -1])
def test_an_edited_mirror_fails_its_check_at_the_exact_entry(
    demo: DemoFederation, built: BuiltLog, log_copy: Path, tmp_path: Path, idx: int
) -> None:
    idx = built.size - 1 if idx == -1 else idx
    verifier = _verifier(demo, log_copy, tmp_path / "mirror.db")
    verifier.sync()
    db = sqlite3.connect(tmp_path / "mirror.db")
    db.execute(
        "UPDATE entry_data SET data = CAST(replace(CAST(data AS TEXT), '\"at\"', '\"At\"') AS BLOB)"
        " WHERE idx = ?",
        (idx,),
    )
    db.commit()
    db.close()
    with pytest.raises(LogVerificationError, match=f"entry {idx} in the mirror was altered") as info:
        verifier.check_mirror()
    assert info.value.entry_index == idx


def test_an_edited_index_column_or_a_deleted_row_fails_the_mirror_check(
    demo: DemoFederation, log_copy: Path, tmp_path: Path
) -> None:
    verifier = _verifier(demo, log_copy, tmp_path / "mirror.db")
    verifier.sync()
    db = sqlite3.connect(tmp_path / "mirror.db")
    db.execute("UPDATE entries SET decision = 'ALLOW' WHERE idx = 40 AND kind = 'decision'")
    db.execute("UPDATE entries SET agency = 'nobody' WHERE idx = 41")
    db.commit()
    with pytest.raises(LogVerificationError, match=r"index of entry 4[01] was edited"):
        verifier.check_mirror()
    db.execute("DELETE FROM entries WHERE idx BETWEEN 40 AND 41")
    db.commit()
    db.close()
    with pytest.raises(LogVerificationError, match="entry 40 is missing from the mirror"):
        verifier.check_mirror()


def test_a_forked_log_of_the_same_size_is_refused(
    demo: DemoFederation, built: BuiltLog, tmp_path: Path
) -> None:
    verifier = _verifier(demo, built.path, tmp_path / "mirror.db")
    verifier.sync()
    other = tmp_path / "other.db"
    asyncio.run(build_console_log(demo, other, queries=700, seed=99))
    forked = _verifier(demo, other, tmp_path / "mirror.db")
    with pytest.raises(LogVerificationError, match=r"forked|does not extend|shrank"):
        forked.sync()


def test_a_checkpoint_without_quorum_is_not_accepted(
    demo: DemoFederation, log_copy: Path, tmp_path: Path
) -> None:
    db = sqlite3.connect(log_copy)
    db.execute("DELETE FROM audit_cosignatures WHERE witness LIKE 'ca%'")
    db.commit()
    db.close()
    verifier = _verifier(demo, log_copy, tmp_path / "mirror.db")
    # Not a verification failure (the witnesses may be late), but nothing is shown.
    with pytest.raises(AuditUnavailable, match="no witness quorum: 1 more from CA needed"):
        verifier.sync()
    assert verifier.mirror.head().size == 0


def test_background_sync_reports_and_keeps_a_failure(
    demo: DemoFederation, log_copy: Path, tmp_path: Path
) -> None:
    verifier = _verifier(demo, log_copy, tmp_path / "mirror.db")
    sync = BackgroundSync(verifier, interval=3600, check_every=100)
    sync.run_round()
    assert sync.status.verified_size == verifier.mirror.head().size > 0
    assert sync.status.failure is None and sync.status.verified_at is not None
    db = sqlite3.connect(tmp_path / "mirror.db")
    db.execute("UPDATE entry_data SET data = X'00' WHERE idx = 5")
    db.commit()
    db.close()
    sync.run_round()  # no mirror check due: the sync round itself finds nothing new
    with pytest.raises(LogVerificationError):
        verifier.check_mirror()
    sync._check_every = 1
    sync.run_round()
    assert sync.status.failure_entry == 5 and sync.status.failure is not None
    sync._check_every = 100
    sync.run_round()
    assert sync.status.failure_entry == 5  # kept: the mirror is checked every round after a failure


# ------------------------------------------------------------------ paging and filters


@pytest.fixture(scope="module")
def synced(demo: DemoFederation, built: BuiltLog, tmp_path_factory: pytest.TempPathFactory) -> Mirror:
    verifier = _verifier(demo, built.path, Path(tmp_path_factory.mktemp("m")) / "mirror.db")
    verifier.sync()
    return verifier.mirror


def _walk(mirror: Mirror, filters: Filters, size: int) -> list[int]:
    seen, page = [], mirror.page(filters, size=size)
    numbers = [page.number]
    while True:
        seen += [r.idx for r in page.rows]
        if page.older is None:
            break
        page = mirror.page(filters, before=page.older, size=size)
        numbers.append(page.number)
    assert numbers == list(range(1, len(numbers) + 1))
    assert page.number == page.pages
    return seen


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"kind": "DECISION"},
        {"decision": "deny"},
        {"rule": "serious_crime"},
        {"node": "US-NODE", "kind": "disclosed"},
    ],
)
def test_keyset_pages_cover_every_match_once_in_order(synced: Mirror, raw: dict[str, str]) -> None:
    filters = Filters.parse(raw)
    seen = _walk(synced, filters, 37)
    total = synced.page(filters).total
    assert len(seen) == len(set(seen)) == total > 0
    assert seen == sorted(seen, reverse=True)
    # Back from the last page to the first, with the same filter: the same pages.
    page = synced.page(filters, size=37)
    forward = [page]
    while page.older is not None:
        page = synced.page(filters, before=page.older, size=37)
        forward.append(page)
    back = [page]
    while page.newer is not None:
        page = synced.page(filters, after=page.newer, size=37)
        back.append(page)
    assert [p.rows for p in reversed(back)] == [p.rows for p in forward]
    assert back[-1].newer is None and forward[-1].older is None


def test_filters_match_case_insensitively_and_by_date(synced: Mirror, built: BuiltLog) -> None:
    one = synced.page(Filters.parse({"query_id": built.query_ids[10].upper()}))
    assert {r.query_id for r in one.rows} == {built.query_ids[10]} and one.total >= 1
    day = one.rows[0].at[:10]
    dated = synced.page(Filters.parse({"since": day, "until": day}), size=10_000)
    assert dated.total > 0 and all(r.at.startswith(day) for r in dated.rows)
    assert synced.page(Filters.parse({"agency": "no.such"})).total == 0
    assert synced.page(Filters.parse({"country": "ca", "kind": "decision"})).total > 0
    with pytest.raises(ValueError, match="not a date"):
        synced.page(Filters.parse({"since": "yesterday"}))


def test_query_and_order_entries_tell_one_story(synced: Mirror, built: BuiltLog) -> None:
    story = synced.query_entries(built.query_ids[0])
    kinds = [r.kind for r in story]
    assert kinds[0] == "decision" and "emergency" in kinds
    under = synced.order_entries(built.emergency_order)
    assert {r.kind for r in under} == {"emergency", "validated"}


@pytest.mark.parametrize(("root", "fails"), [(EMPTY_ROOT, False), (b"\x01" * 32, True)])
def test_a_quorum_checkpoint_of_the_empty_tree_is_nothing_to_fetch_not_a_fork(
    demo: DemoFederation,
    log_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    root: bytes,
    fails: bool,
) -> None:
    # A new log, or witnesses that have not cosigned past it yet: the newest quorum checkpoint is
    # the empty tree, which a new mirror (no root kept yet) must not mistake for another tree.
    verifier = _verifier(demo, log_copy, tmp_path / "mirror.db")
    empty = SignedCheckpoint(Checkpoint("comity-test", 0, root), Note("comity-test\n0\n", ()))
    monkeypatch.setattr(verifier, "_open", lambda *a, **k: (empty, ("ca-node", "us-node")))
    if fails:
        with pytest.raises(LogVerificationError, match="size 0 has a root other than the empty tree's"):
            verifier.sync()
    else:
        assert (verifier.sync().size, verifier.mirror.head().size) == (0, 0)
