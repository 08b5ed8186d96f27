"""The justification reuse check: keyed signatures in the log's database, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select

from comity.audit.justification_signatures import SignatureTables, open_writer
from comity.audit.log import TransparencyLog
from comity.audit.retention import prune_openings
from comity.audit.store import LogStore
from comity.core.errors import ComityError, ConfigError
from comity.core.keys import SigningKey
from comity.gateway.reuse import JUSTIFICATION_UNCHECKED, ReuseStore, load_reuse_key
from comity.policy import PolicyBundle, bundle_path
from comity.policy.justification import JustificationStandard

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
KEY = bytes(range(32))
FACTS = (
    "On 3 March 2026 a ransomware group encrypted the network of a hospital in Columbus, Ohio and "
    "demanded 40 bitcoin; the ransom note named this address for negotiation."
)
# The same facts with a date, a place and the order of the sentences changed.
EDITED = (
    "The ransom note named this address for negotiation. On 5 March 2026 a ransomware group encrypted "
    "the network of a hospital in Dayton, Ohio and demanded 40 bitcoin."
)
OTHER = (
    "On 8 February 2026 a credit union in Tacoma wired 1.2 million dollars after an e-mail that imitated "
    "its president asked for an urgent supplier payment to a Toronto bank."
)


@pytest.fixture(scope="module")
def standard() -> JustificationStandard:
    return PolicyBundle.load(bundle_path("us-ca-agreement")).justification


@pytest.fixture
def db(log_url: tuple[str, str]) -> Iterator[tuple[str, str]]:
    yield log_url
    url, prefix = log_url
    _, engine = open_writer(url)
    SignatureTables(prefix).metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def store(db: tuple[str, str]) -> Iterator[ReuseStore]:
    url, prefix = db
    s = ReuseStore(url, KEY, table_prefix=prefix)
    yield s
    s.close()


def _claim(
    store: ReuseStore,
    standard: JustificationStandard,
    facts: str = FACTS,
    *,
    case: str = "FBI-2026-CY-00417",
    agency: str = "us.fbi",
    now: datetime = NOW,
) -> bool:
    return store.claim(agency=agency, case_reference=case, facts=facts, standard=standard, now=now).reused


def test_copied_facts_under_another_case_are_reused_and_the_same_case_is_not(
    store: ReuseStore, standard: JustificationStandard
) -> None:
    assert not _claim(store, standard)
    assert not _claim(store, standard, case="FBI-2026-CY-00417")  # the same case asks again
    assert store.count() == 1  # one row per case and text
    assert _claim(store, standard, case="FBI-2026-CY-00999")  # word for word under another case
    assert _claim(store, standard, EDITED, case="FBI-2026-CY-01000")  # edited and reordered
    assert not _claim(store, standard, OTHER, case="FBI-2026-FR-00001")  # new facts for a new case
    assert store.count() == 2


def test_the_case_reference_inside_the_text_does_not_hide_a_copy(
    store: ReuseStore, standard: JustificationStandard
) -> None:
    assert not _claim(store, standard, f"Case FBI-2026-CY-00417. {FACTS}", case="FBI-2026-CY-00417")
    assert _claim(store, standard, f"Case FBI-2026-CY-00555. {FACTS}", case="FBI-2026-CY-00555")


def test_another_agency_is_not_linked(store: ReuseStore, standard: JustificationStandard) -> None:
    assert not _claim(store, standard, agency="us.fbi")
    assert not _claim(store, standard, agency="us.hsi", case="HSI-2026-0001")


def test_a_withdrawn_claim_does_not_count(store: ReuseStore, standard: JustificationStandard) -> None:
    claim = store.claim(agency="us.fbi", case_reference="C-1", facts=FACTS, standard=standard, now=NOW)
    assert not claim.reused and claim.signature_id is not None
    store.release(claim)  # the query was refused: its facts were not used
    assert store.count() == 0
    assert not _claim(store, standard, case="C-2")


def test_signatures_are_keyed(db: tuple[str, str], standard: JustificationStandard) -> None:
    url, prefix = db
    first = ReuseStore(url, KEY, table_prefix=prefix)
    other = ReuseStore(url, bytes(reversed(range(32))), table_prefix=prefix)
    try:
        assert not _claim(first, standard)
        # The same text under another case, signed under another key, matches nothing stored.
        assert not _claim(other, standard, case="FBI-2026-CY-00999")
        assert _claim(first, standard, case="FBI-2026-CY-01000")
    finally:
        first.close()
        other.close()


def test_only_signatures_are_stored(
    db: tuple[str, str], store: ReuseStore, standard: JustificationStandard
) -> None:
    _claim(store, standard, case="FBI-2026-CY-00417")
    url, prefix = db
    _, engine = open_writer(url)
    tables = SignatureTables(prefix)
    try:
        with engine.begin() as conn:
            rows = [tuple(r) for t in (tables.signatures, tables.bands) for r in conn.execute(select(t))]
    finally:
        engine.dispose()
    stored = repr(rows).lower().encode()
    for word in ("ransom", "columbus", "bitcoin", "fbi-2026-cy-00417", "00417"):
        assert word.encode() not in stored


def test_signatures_past_the_retention_period_do_not_match(
    store: ReuseStore, standard: JustificationStandard
) -> None:
    assert not _claim(store, standard, now=NOW - timedelta(days=731))
    assert not _claim(store, standard, case="FBI-2026-CY-00999")


@pytest.mark.asyncio
async def test_audit_prune_deletes_signatures_past_the_retention_period(
    db: tuple[str, str], store: ReuseStore, standard: JustificationStandard
) -> None:
    url, prefix = db
    log = await TransparencyLog.open(
        url, origin="comity.test/reuse", key=SigningKey.generate("comity.test/reuse"), table_prefix=prefix
    )
    await log.close()
    assert not _claim(store, standard, case="OLD-1", now=NOW - timedelta(days=800))
    assert not _claim(store, standard, OTHER, case="NEW-1", now=NOW - timedelta(days=30))
    log_store = LogStore.open(url, table_prefix=prefix, create=False)
    try:
        cutoff = NOW - timedelta(days=730)
        assert prune_openings(log_store, cutoff=cutoff, dry_run=True).signatures_deleted == 1
        assert store.count() == 2
        assert prune_openings(log_store, cutoff=cutoff).signatures_deleted == 1
    finally:
        log_store.close()
    assert store.count() == 1
    assert _claim(store, standard, OTHER, case="NEW-2")  # the recent one still counts


def test_a_store_that_cannot_be_read_refuses(
    store: ReuseStore, db: tuple[str, str], standard: JustificationStandard
) -> None:
    url, prefix = db
    _, engine = open_writer(url)
    SignatureTables(prefix).metadata.drop_all(engine)
    engine.dispose()
    with pytest.raises(ComityError) as exc:
        _claim(store, standard)
    assert exc.value.code == grpc.StatusCode.UNAVAILABLE
    assert exc.value.violations[0].check == JUSTIFICATION_UNCHECKED
    assert exc.value.violations[0].code == "JUSTIFICATION"


def test_the_key_file(tmp_path: Path) -> None:
    good = tmp_path / "good.key"
    good.write_text(os.urandom(32).hex() + "\n", encoding="ascii")
    assert len(load_reuse_key(good)) == 32
    short = tmp_path / "short.key"
    short.write_text("00" * 16, encoding="ascii")
    for path in (short, tmp_path / "absent.key", tmp_path):
        with pytest.raises(ConfigError) as exc:
            load_reuse_key(path)
        assert exc.value.field == "keys.justification_key"
