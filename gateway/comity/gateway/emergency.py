"""The emergency track: which emergency orders were used, and whether each was validated in time.

An emergency order lets a FETCH skip the hit step. In exchange, a judicial or independent
authority of the order's country must review it afterwards: within ``deadline`` (48 hours) of
its first use, it confirms the emergency or does not. The gateway records the first use of
each emergency order (an ``emergency`` event, with the deadline) and each review (a
``validated`` event) in the transparency log. The record that binds is kept beside the log, in
the same transactions (``comity.audit.shared_state``), so every gateway over one log database
sees one emergency track: a second first use or a second review is withdrawn there, and each
decision's emergency facts are checked against it when the decision is appended. The policy
sees, for each query on the emergency track, how many of the agency's emergency orders are
overdue and whether this one was not confirmed. This process keeps a copy in memory as its
first guess of those facts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime, timedelta

from google.protobuf.message import DecodeError

from comity.audit.emergencies import EmergencyRecord, EmergencyUse, ReviewStatus
from comity.audit.errors import EntryWithdrawn
from comity.audit.events import emergency_event, validated_event
from comity.audit.shared_state import EmergencyRow, Review, micros
from comity.core.emergency import VerifiedValidation, verify_validation
from comity.core.errors import (
    AlreadyExists,
    ComityError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from comity.core.federation import Federation
from comity.core.orders import VerifiedOrder
from comity.core.tokens import VerifiedToken
from comity.gateway.ledger import Ledger, Logged
from comity.policy.wire import EmergencyStatus
from comity.v1 import comity_pb2 as pb

__all__ = ["DEFAULT_DEADLINE", "EmergencyTracker", "EmergencyUse", "validate_request"]

_log = logging.getLogger("comity.gateway.emergency")

DEFAULT_DEADLINE = timedelta(hours=48)


class EmergencyTracker:
    """The gateway's record of emergency orders in use; one per gateway, on its event loop."""

    def __init__(self, ledger: Ledger, *, deadline: timedelta = DEFAULT_DEADLINE) -> None:
        self._ledger = ledger
        self._deadline = deadline
        self._record = EmergencyRecord()
        # Serialises first uses and reviews (both rare): a second query under the same order
        # waits until the first use is durable, and one order is never reviewed twice.
        self._lock = asyncio.Lock()

    def uses(self) -> list[EmergencyUse]:
        """Every emergency order on record, oldest first."""
        return list(self._record)

    def status(self, agency: str, order: VerifiedOrder, *, now: datetime) -> EmergencyStatus:
        """What the policy needs to know about ``agency`` and ``order`` on the emergency track."""
        use = self._record.get(order.digest)
        return EmergencyStatus(
            overdue_orders=self._record.overdue(agency, now),
            order_rejected=use is not None and use.status == "rejected",
        )

    async def note_use(
        self, order: VerifiedOrder, *, query_id: str, investigator: str, agency: str, at: datetime
    ) -> Logged | None:
        """Record the first allowed use of an emergency order; later uses and other orders are no-ops."""
        if not order.order.emergency:
            return None
        async with self._lock:
            if self._record.get(order.digest) is not None:
                return None
            try:
                return await self._first_use(
                    order, query_id=query_id, investigator=investigator, agency=agency, at=at
                )
            except EntryWithdrawn:  # another gateway over this log recorded the first use
                await self._refresh(order.digest)
                return None

    async def _first_use(
        self, order: VerifiedOrder, *, query_id: str, investigator: str, agency: str, at: datetime
    ) -> Logged:
        use = EmergencyUse(
            order_id=order.order_id,
            order_digest=order.digest,
            agency=agency,
            issuing_country=order.order.issuing_country,
            authority=order.authority.id,
            first_used=at,
            validate_by=at + self._deadline,
        )
        logged = await self._ledger.record(
            emergency_event(
                query_id=query_id,
                order_id=use.order_id,
                order_digest=use.order_digest,
                at=at,
                investigator=investigator,
                agency=agency,
                issuing_country=use.issuing_country,
                authority=use.authority,
                validate_by=use.validate_by,
            ),
            first_use=EmergencyRow(
                use.order_digest,
                use.order_id,
                use.agency,
                use.issuing_country,
                use.authority,
                micros(use.first_used),
                micros(use.validate_by),
            ),
        )
        self._record.add(use)
        return logged

    async def _refresh(self, order_digest: bytes) -> EmergencyUse | None:
        """Copy one order's shared record into this process's."""
        row = await self._ledger.log.emergency_use(order_digest)
        if row is None:
            return None
        use = _use(row)
        self._record.add(use)
        return use

    async def validate(self, validation: VerifiedValidation, *, agency: str, now: datetime) -> Logged:
        """Record an authority's review of an emergency order ``agency`` used.

        Raises :class:`NotFound` (no such emergency use), :class:`PermissionDenied` (another
        agency's order, or an authority of another country), :class:`AlreadyExists` (reviewed
        before) or :class:`InvalidArgument` (order id and digest disagree).
        """
        async with self._lock:
            return await self._review(validation, agency=agency, now=now)

    async def _review(self, validation: VerifiedValidation, *, agency: str, now: datetime) -> Logged:
        v = validation.validation
        use = await self._refresh(v.order_digest)
        if use is None:
            raise NotFound(
                f"no use of emergency order {v.order_id!r} with that digest is on record",
                hint="validate an emergency order that was used in a query, signed over its exact bytes",
            )
        if use.order_id != v.order_id:
            raise InvalidArgument(
                f"the validation names order {v.order_id!r}, but its digest is that of order {use.order_id!r}"
            )
        if use.agency != agency:
            raise PermissionDenied(
                f"emergency order {use.order_id!r} was used by {use.agency}; "
                "its own investigators submit the validation"
            )
        if validation.authority.country != use.issuing_country:
            raise PermissionDenied(
                f"authority {validation.authority.id!r} is of {validation.authority.country}; "
                f"emergency order {use.order_id!r} was issued in {use.issuing_country}"
            )
        if use.status != "pending":
            raise AlreadyExists(f"emergency order {use.order_id!r} was already reviewed: {use.status}")
        late = now > use.validate_by
        status = "confirmed" if v.confirmed else "rejected"
        try:
            logged = await self._ledger.record(
                validated_event(
                    order_id=use.order_id,
                    order_digest=use.order_digest,
                    validation_digest=validation.digest,
                    at=now,
                    agency=agency,
                    authority=validation.authority.id,
                    confirmed=v.confirmed,
                    late=late,
                ),
                review=Review(use.order_digest, status, late, validation.authority.id),
            )
        except EntryWithdrawn:  # another gateway over this log reviewed it meanwhile
            await self._refresh(use.order_digest)
            raise AlreadyExists(f"emergency order {use.order_id!r} was already reviewed") from None
        use.status, use.late = ("confirmed" if v.confirmed else "rejected"), late
        use.reviewed_by = validation.authority.id
        return logged

    async def restore(self) -> int:
        """Copy the shared record into this process's; returns how many emergency orders are on record."""
        for row in await self._ledger.log.emergency_uses():
            self._record.add(_use(row))
        return len(self._record)


def _use(row: EmergencyRow) -> EmergencyUse:
    def at(us: int) -> datetime:
        return datetime.fromtimestamp(us / 1_000_000, tz=UTC)

    status: ReviewStatus = (
        "confirmed" if row.status == "confirmed" else ("rejected" if row.status == "rejected" else "pending")
    )
    return EmergencyUse(
        order_id=row.order_id,
        order_digest=row.order_digest,
        agency=row.agency,
        issuing_country=row.issuing_country,
        authority=row.authority,
        first_used=at(row.first_used),
        validate_by=at(row.validate_by),
        status=status,
        late=row.late,
        reviewed_by=row.reviewed_by,
    )


async def validate_request(
    request: pb.ValidateEmergencyRequest,
    token: VerifiedToken,
    *,
    federation: Federation,
    tracker: EmergencyTracker,
    ledger: Ledger,
    now: datetime,
) -> pb.ValidateEmergencyResponse:
    """Verify a signed validation from an authenticated investigator, record it, return its receipt.

    A refusal from here on is logged (the caller is a registered investigator) and carries the
    refusal's receipt, as a refused query does.
    """
    envelope = request.signed_validation
    digest = hashlib.sha256(envelope.payload).digest()
    try:
        if not request.HasField("signed_validation"):
            raise InvalidArgument(
                "signed_validation is missing",
                hint="have the authority sign it with 'comity order validate', then submit the file",
            )
        verified = verify_validation(envelope, federation)
        logged = await tracker.validate(verified, agency=token.agency, now=now)
    except ComityError as err:
        try:
            order_id = pb.EmergencyValidation.FromString(envelope.payload).order_id
        except DecodeError:
            order_id = ""
        try:
            refused = await ledger.record_refusal(
                query_id=order_id,
                query_digest=digest,
                investigator=token.subject,
                agency=token.agency,
                reason=f"{err.code.name}:{type(err).__name__}",
                at=now,
            )
            err.receipt = await ledger.receipt(order_id, digest, [refused])
        except ComityError as log_error:
            _log.error("could not log a refused emergency validation: %s", log_error.message)
        raise
    return pb.ValidateEmergencyResponse(
        receipt=await ledger.receipt(verified.validation.order_id, digest, [logged])
    )
