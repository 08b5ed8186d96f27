"""The gateway's emergency track over a real log: deadlines, reviews, and a restart in between."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from comity.core.bootstrap import FederationLayout, init_federation
from comity.core.dsse import EnvelopeError
from comity.core.emergency import sign_validation, validation_for, verify_validation
from comity.core.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.core.orders import VerifiedOrder, sign_order
from comity.gateway.emergency import EmergencyTracker
from comity.gateway.ledger import Ledger
from comity.v1 import comity_pb2 as pb

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
ORIGIN = "comity.test/emergency"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(
        tmp_path_factory.mktemp("fed"), gateway_port=1, countries={"US": 2, "CA": 3}, now=NOW
    )


@pytest.fixture(scope="module")
def fed(layout: FederationLayout) -> Federation:
    return Federation.load(layout.federation_file)


def _authority_key(layout: FederationLayout, agency: str) -> SigningKey:
    a = layout.agencies[agency]
    return SigningKey.load(a.authority_key, key_id=a.authority)


def _order(
    layout: FederationLayout, fed: Federation, order_id: str, *, emergency: bool = True
) -> tuple[pb.Envelope, VerifiedOrder]:
    key = _authority_key(layout, "us.fbi")
    order = pb.LegalOrder(
        order_id=order_id, issuing_authority=key.key_id, issuing_country="US", emergency=emergency
    )
    envelope = sign_order(order, key)
    return envelope, VerifiedOrder(
        order, fed.authority(key.key_id), hashlib.sha256(envelope.payload).digest()
    )


async def _ledger(path: Path, key: SigningKey) -> Ledger:
    return await Ledger.open(f"sqlite:///{path}", origin=ORIGIN, key=key, witnesses={}, batch_interval=0)


@pytest.mark.asyncio
async def test_deadline_review_and_restart(tmp_path: Path, layout: FederationLayout, fed: Federation) -> None:
    log_key = SigningKey.generate(ORIGIN)
    ledger = await _ledger(tmp_path / "audit.db", log_key)
    tracker = EmergencyTracker(ledger, deadline=timedelta(hours=48))
    first_env, first = _order(layout, fed, "US-EMERG-1")
    second_env, second = _order(layout, fed, "US-EMERG-2")
    _, ordinary = _order(layout, fed, "US-ORD-1", emergency=False)

    assert await tracker.note_use(ordinary, query_id="q0", investigator="i", agency="us.fbi", at=NOW) is None
    assert await tracker.note_use(first, query_id="q1", investigator="i", agency="us.fbi", at=NOW) is not None
    assert await tracker.note_use(first, query_id="q2", investigator="i", agency="us.fbi", at=NOW) is None
    await tracker.note_use(second, query_id="q3", investigator="i", agency="us.fbi", at=NOW)

    within, after = NOW + timedelta(hours=47), NOW + timedelta(hours=49)
    assert tracker.status("us.fbi", ordinary, now=within).overdue_orders == 0
    assert tracker.status("us.fbi", ordinary, now=after).overdue_orders == 2
    assert tracker.status("ca.rcmp", ordinary, now=after).overdue_orders == 0  # per agency

    # The first is confirmed in time; the second rejected, late.
    ok = verify_validation(
        sign_validation(
            validation_for(first_env, authority="us.court.sdny", confirmed=True),
            _authority_key(layout, "us.fbi"),
        ),
        fed,
    )
    await tracker.validate(ok, agency="us.fbi", now=within)
    no = verify_validation(
        sign_validation(
            validation_for(second_env, authority="us.court.sdny", confirmed=False),
            _authority_key(layout, "us.fbi"),
        ),
        fed,
    )
    await tracker.validate(no, agency="us.fbi", now=after)
    assert tracker.status("us.fbi", first, now=after).overdue_orders == 0
    assert tracker.status("us.fbi", second, now=after).order_rejected
    with pytest.raises(AlreadyExists):
        await tracker.validate(ok, agency="us.fbi", now=after)
    await ledger.close()

    # A restarted gateway knows all of it from the log.
    reopened = await _ledger(tmp_path / "audit.db", log_key)
    restored = EmergencyTracker(reopened)
    try:
        assert await restored.restore() == 2
        by_id = {u.order_id: u for u in restored.uses()}
        assert (by_id["US-EMERG-1"].status, by_id["US-EMERG-1"].late) == ("confirmed", False)
        assert (by_id["US-EMERG-2"].status, by_id["US-EMERG-2"].late) == ("rejected", True)
        assert by_id["US-EMERG-1"].validate_by == NOW + timedelta(hours=48)
        assert restored.status("us.fbi", second, now=after).order_rejected
    finally:
        await reopened.close()


@pytest.mark.asyncio
async def test_refusals_name_what_is_wrong(tmp_path: Path, layout: FederationLayout, fed: Federation) -> None:
    ledger = await _ledger(tmp_path / "audit.db", SigningKey.generate(ORIGIN))
    tracker = EmergencyTracker(ledger)
    envelope, order = _order(layout, fed, "US-EMERG-9")
    key = _authority_key(layout, "us.fbi")
    signed = verify_validation(
        sign_validation(validation_for(envelope, authority=key.key_id, confirmed=True), key), fed
    )
    try:
        with pytest.raises(NotFound, match="no use of emergency order 'US-EMERG-9'"):
            await tracker.validate(signed, agency="us.fbi", now=NOW)
        await tracker.note_use(order, query_id="q", investigator="i", agency="us.fbi", at=NOW)
        with pytest.raises(PermissionDenied, match=r"was used by us\.fbi"):
            await tracker.validate(signed, agency="ca.rcmp", now=NOW)
        renamed = pb.EmergencyValidation()
        renamed.CopyFrom(signed.validation)
        renamed.order_id = "US-EMERG-OTHER"
        forged = verify_validation(sign_validation(renamed, key), fed)
        with pytest.raises(InvalidArgument, match="its digest is that of order 'US-EMERG-9'"):
            await tracker.validate(forged, agency="us.fbi", now=NOW)
    finally:
        await ledger.close()


def test_only_a_registered_judicial_or_independent_authority_validates(
    layout: FederationLayout, fed: Federation
) -> None:
    envelope, _ = _order(layout, fed, "US-EMERG-5")
    key = _authority_key(layout, "us.fbi")
    validation = validation_for(envelope, authority=key.key_id, confirmed=True)
    # Signed by a key the federation does not know, under a registered id.
    with pytest.raises(EnvelopeError, match="does not verify"):
        verify_validation(sign_validation(validation, SigningKey.generate(key.key_id)), fed)
    # Signed by one registered authority in the name of another.
    other = _authority_key(layout, "ca.rcmp")
    with pytest.raises(
        PermissionDenied, match=r"names authority 'us\.court\.sdny' but is signed by 'ca\.court\.onsc'"
    ):
        verify_validation(sign_validation(validation, other), fed)
    # An administrative authority may not review an emergency.
    admin = Federation.from_toml_text(
        layout.federation_file.read_text().replace('kind = "judicial"', 'kind = "administrative"', 1),
        base=layout.directory,
    )
    with pytest.raises(PermissionDenied, match="is administrative"):
        verify_validation(sign_validation(validation, key), admin)
    # Payload and digest must be well formed.
    broken = pb.EmergencyValidation(order_id="x", order_digest=b"short", validating_authority=key.key_id)
    with pytest.raises(InvalidArgument, match="32-byte"):
        verify_validation(sign_validation(broken, key), fed)


@pytest.mark.asyncio
async def test_concurrent_first_uses_log_once_and_concurrent_reviews_record_one(
    tmp_path: Path, layout: FederationLayout, fed: Federation
) -> None:
    import asyncio

    ledger = await _ledger(tmp_path / "audit.db", SigningKey.generate(ORIGIN))
    tracker = EmergencyTracker(ledger)
    envelope, order = _order(layout, fed, "US-EMERG-7")
    key = _authority_key(layout, "us.fbi")
    try:
        logged = await asyncio.gather(
            *(
                tracker.note_use(order, query_id=f"q{i}", investigator="i", agency="us.fbi", at=NOW)
                for i in range(8)
            )
        )
        assert sum(entry is not None for entry in logged) == 1
        review = verify_validation(
            sign_validation(validation_for(envelope, authority=key.key_id, confirmed=True), key), fed
        )
        outcomes = await asyncio.gather(
            *(tracker.validate(review, agency="us.fbi", now=NOW) for _ in range(4)), return_exceptions=True
        )
        assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
        assert all(isinstance(o, AlreadyExists) for o in outcomes if isinstance(o, BaseException))
        entries = await ledger.entries(0, await ledger.tree_size())
        assert sum(b'"kind":"emergency"' in e for e in entries) == 1
        assert sum(b'"kind":"validated"' in e for e in entries) == 1
    finally:
        await ledger.close()
