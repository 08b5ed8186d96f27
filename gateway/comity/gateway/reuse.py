"""Reused justifications: the same facts under another case reference of the same agency.

For every query the gateway signs the justification's facts (a keyed MinHash of its word pairs,
:mod:`comity.policy.minhash`, after the bundle's normalisation with the query's own case reference
removed) and looks for a signature of the same agency, under a different case reference, within
the retention period, whose estimated similarity reaches the bundle's ``reuse_percent``. Found:
the fact ``justification.reused`` is true and JUSTIFICATION refuses. Not found: the signature is
stored (a claim), and withdrawn again if the policy refuses the query for any reason, so only
allowed queries' facts count as used.

Look-up and claim run in one transaction under a per-agency lock (SQLite ``BEGIN IMMEDIATE``,
PostgreSQL ``pg_advisory_xact_lock``), so two replicas given the same facts under two case
references at once cannot both pass. Only signatures are stored, never the text or the case
reference (a keyed digest of it); without the key a signature confirms no guessed text.

If the store cannot be read or written, the query is refused (fail closed).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import grpc
from sqlalchemy import Connection, Select, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy import func as sql_func
from sqlalchemy.exc import SQLAlchemyError

from comity.audit.justification_signatures import SignatureTables, open_writer
from comity.audit.retention import DEFAULT_RETENTION
from comity.core.errors import ConfigError
from comity.core.refusals import Check, refuse, register
from comity.policy.justification import JustificationStandard
from comity.policy.minhash import BANDS, MIN_KEY_BYTES, KeyedMinHash, decode, encode, similarity

__all__ = ["JUSTIFICATION_UNCHECKED", "Claim", "ReuseStore", "load_reuse_key"]

JUSTIFICATION_UNCHECKED = "JUSTIFICATION_UNCHECKED"
register(
    Check(
        code=JUSTIFICATION_UNCHECKED,
        rule="JUSTIFICATION",
        status=grpc.StatusCode.UNAVAILABLE,
        message=(
            "The gateway could not check whether this justification was already used for another case, "
            "so the query was refused. Submit it again later; if it keeps failing, tell the gateway operator."
        ),
        legal_basis="18 U.S.C. §2523(b)(4)(D)(iv)",
    )
)

_CASE = b"comity/justification-case/v1"


def load_reuse_key(path: Path) -> bytes:
    """The secret MinHash key: hex text of at least 32 random bytes (``comity`` writes one per gateway).

    Raises:
        ConfigError: naming ``keys.justification_key`` when the file is missing or not such a key.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError):
        raise ConfigError(
            f"cannot read the justification key at {path}",
            field="keys.justification_key",
            hint="write 32 random bytes as hex: python -c 'import secrets; print(secrets.token_hex(32))'",
        ) from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"the justification key holds {len(key)} bytes; at least {MIN_KEY_BYTES} are needed",
            field="keys.justification_key",
        )
    return key


@dataclass(frozen=True, slots=True)
class Claim:
    """What the look-up found: whether the facts are reused, and the signature stored if not."""

    reused: bool
    signature_id: int | None = None
    """The row stored for this query (None: nothing stored); withdrawn if the query is refused."""


class ReuseStore:
    """The keyed signatures of justification facts, in the audit log's database.

    ``url``: the log's ``sqlite:///`` or ``postgresql://`` URL; ``key``: the gateway's secret
    (:func:`load_reuse_key`), shared by every replica of one gateway.
    """

    def __init__(
        self,
        url: str,
        key: bytes,
        *,
        retention: timedelta = DEFAULT_RETENTION,
        table_prefix: str = "audit_",
    ) -> None:
        self._minhash = KeyedMinHash(key)
        self._retention = retention
        self._tables = SignatureTables(table_prefix)
        self._dialect, self._engine = open_writer(url)
        try:
            self._tables.metadata.create_all(self._engine, checkfirst=True)
        except SQLAlchemyError as exc:
            raise refuse(JUSTIFICATION_UNCHECKED) from exc
        self._candidates = _candidates(self._tables)

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    # ------------------------------------------------------------------ the check

    def claim(
        self,
        *,
        agency: str,
        case_reference: str,
        facts: str,
        standard: JustificationStandard,
        now: datetime,
    ) -> Claim:
        """Whether ``facts`` are reused; if not, store their signature for this case.

        Raises:
            ComityError: JUSTIFICATION_UNCHECKED (UNAVAILABLE) when the store fails.
        """
        signature = self._minhash.signature(standard.words(facts, case_reference=case_reference))
        if signature is None:
            return Claim(False)  # no content word: JUSTIFICATION refuses it anyway, nothing to keep
        case = self._minhash.digest(_CASE, f"{agency}\x00{case_reference.strip()}")
        try:
            with self._engine.begin() as conn:
                self._lock(conn, agency)
                same_case, reused = self._look_up(
                    conn, agency, case, signature, now, threshold=standard.reuse_percent / 100
                )
                if reused:
                    return Claim(True)
                if same_case is not None:
                    # The same facts again for the same case: keep one row, counted from now.
                    t = self._tables.signatures
                    conn.execute(update(t).where(t.c.id == same_case).values(at=int(now.timestamp())))
                    return Claim(False)
                return Claim(False, self._store(conn, agency, case, signature, now))
        except SQLAlchemyError as exc:
            raise refuse(JUSTIFICATION_UNCHECKED) from exc

    async def claim_async(
        self,
        *,
        agency: str,
        case_reference: str,
        facts: str,
        standard: JustificationStandard,
        now: datetime,
    ) -> Claim:
        """:meth:`claim` in a worker thread (it waits for the database)."""
        return await asyncio.to_thread(
            self.claim, agency=agency, case_reference=case_reference, facts=facts, standard=standard, now=now
        )

    def release(self, claim: Claim) -> None:
        """Withdraw the signature ``claim`` stored (its query was refused): its facts were not used.

        Raises:
            ComityError: JUSTIFICATION_UNCHECKED when the store fails.
        """
        if claim.signature_id is None:
            return
        s, b = self._tables.signatures, self._tables.bands
        try:
            with self._engine.begin() as conn:
                conn.execute(delete(b).where(b.c.signature_id == claim.signature_id))
                conn.execute(delete(s).where(s.c.id == claim.signature_id))
        except SQLAlchemyError as exc:
            raise refuse(JUSTIFICATION_UNCHECKED) from exc

    async def release_async(self, claim: Claim) -> None:
        """:meth:`release` in a worker thread."""
        await asyncio.to_thread(self.release, claim)

    def count(self) -> int:
        """How many signatures are stored (for tests and operators)."""
        with self._engine.begin() as conn:
            s = self._tables.signatures
            return int(conn.execute(select(sql_func.count()).select_from(s)).scalar_one())

    # ------------------------------------------------------------------ inside the transaction

    def _lock(self, conn: Connection, agency: str) -> None:
        # SQLite's BEGIN IMMEDIATE (the log's writer engine) already serialises writers.
        if self._dialect == "postgresql":
            digest = hashlib.sha256(b"comity-justification-reuse:" + agency.encode("utf-8")).digest()
            conn.execute(
                select(sql_func.pg_advisory_xact_lock(int.from_bytes(digest[:8], "big", signed=True)))
            )

    def _look_up(
        self,
        conn: Connection,
        agency: str,
        case: bytes,
        signature: tuple[int, ...],
        now: datetime,
        *,
        threshold: float,
    ) -> tuple[int | None, bool]:
        """(id of an identical signature of this case, whether another case's signature is close enough)."""
        bands = self._minhash.bands(signature)
        values: dict[str, object] = {f"lsh_{i}": v for i, v in enumerate(bands)}
        values.update(agency=agency, horizon=int((now - self._retention).timestamp()))
        same_case: int | None = None
        for row in conn.execute(self._candidates, values):
            score = similarity(signature, decode(row.signature))
            if row.case_digest != case and score >= threshold:
                return None, True
            if row.case_digest == case and score == 1.0 and same_case is None:
                same_case = int(row.id)
        return same_case, False

    def _store(
        self, conn: Connection, agency: str, case: bytes, signature: tuple[int, ...], now: datetime
    ) -> int:
        s, b = self._tables.signatures, self._tables.bands
        row = conn.execute(
            insert(s)
            .values(agency=agency, case_digest=case, at=int(now.timestamp()), signature=encode(signature))
            .returning(s.c.id)
        ).scalar_one()
        conn.execute(
            insert(b),
            [
                {"signature_id": row, "band": i, "value": v, "agency": agency}
                for i, v in enumerate(self._minhash.bands(signature))
            ],
        )
        return int(row)


def _candidates(tables: SignatureTables) -> Select[tuple[int, bytes, bytes]]:
    """The look-up of an agency's signatures sharing a band with the one checked, built once.

    Its values are bound per call (``agency``, ``horizon``, ``lsh_0`` …): building this
    statement, an ``OR`` over every band, cost more per query than running it.
    """
    s, b = tables.signatures, tables.bands
    shares_a_band = or_(*(and_(b.c.band == i, b.c.value == bindparam(f"lsh_{i}")) for i in range(BANDS)))
    return (
        select(s.c.id, s.c.case_digest, s.c.signature)
        .where(
            s.c.at >= bindparam("horizon"),
            s.c.id.in_(select(b.c.signature_id).where(b.c.agency == bindparam("agency"), shares_a_band)),
        )
        .order_by(s.c.id)
    )
