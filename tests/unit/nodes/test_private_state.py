"""The private hit check's daily limits and evaluation log: durable, shared, enforced under concurrency."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from comity.core import errors
from comity.nodes.private_state import Limit, PrivateLedger
from comity.v1 import comity_pb2 as pb

_NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``(url, table prefix)`` of an empty node database; PostgreSQL tables dropped afterwards."""
    if request.param == "sqlite":
        yield str(tmp_path / "node.db"), "comity_"
        return
    url: str = request.getfixturevalue("postgres_url")
    prefix = f"p{uuid.uuid4().hex[:12]}_"
    yield url, prefix
    ledger = PrivateLedger(url, table_prefix=prefix)
    ledger.drop()
    ledger.close()


def _query(order: str = "O-1", agency: str = "us.fbi", n: int = 1) -> pb.Query:
    q = pb.Query(
        query_id=str(uuid.uuid4()),
        requesting_agency=agency,
        investigator=f"{agency}/agent-1",
        kind=pb.PRIVATE_HIT_CHECK,
        categories=[pb.SUBSCRIBER],
        filter_epoch=7,
    )
    q.order_reference.order_id = order
    for _ in range(n):
        q.private_selectors.add(type=pb.EMAIL, commitment=secrets.token_bytes(32), blinded_element=bytes(32))
    return q


def _limits(q: pb.Query, per_order: int = 5, per_agency: int = 8) -> list[Limit]:
    order = q.order_reference.order_id
    return [
        Limit(f"order {order}", f"order:{order}", per_order),
        Limit(f"agency {q.requesting_agency}", f"agency:{q.requesting_agency}", per_agency),
    ]


def test_limits_per_order_and_agency_per_day(ledger_url: tuple[str, str]) -> None:
    url, prefix = ledger_url
    ledger = PrivateLedger(url, table_prefix=prefix)
    for n in (3, 2):
        q = _query(n=n)
        ledger.take(q, _limits(q), now=_NOW)
    q = _query()
    with pytest.raises(errors.ResourceExhausted) as caught:
        ledger.take(q, _limits(q), now=_NOW)
    assert {v.check for v in caught.value.violations} == {"PRIVATE_LIMIT"}
    assert (
        "order O-1 may test at most 5" in caught.value.message and "5 tested already" in caught.value.message
    )
    # A refused check counts nowhere: the agency's count did not move.
    assert ledger.used("agency:us.fbi", "2026-12-01") == 5
    tomorrow = _query(n=5)
    ledger.take(tomorrow, _limits(tomorrow), now=_NOW + timedelta(days=1))  # a new UTC day
    other = _query(order="O-2", n=3)
    ledger.take(other, _limits(other), now=_NOW)
    with pytest.raises(errors.ResourceExhausted) as caught:
        more = _query(order="O-2")
        ledger.take(more, _limits(more), now=_NOW)  # the agency's limit, across its orders
    assert "agency us.fbi may test at most 8" in caught.value.message
    ledger.close()


def test_counts_and_log_survive_reopening(ledger_url: tuple[str, str]) -> None:
    url, prefix = ledger_url
    ledger = PrivateLedger(url, table_prefix=prefix)
    q = _query(n=4)
    ledger.take(q, _limits(q), now=_NOW)
    ledger.close()
    reopened = PrivateLedger(url, table_prefix=prefix)
    assert reopened.used("order:O-1", "2026-12-01") == 4
    logged = reopened.evaluation(q.query_id)
    assert logged is not None
    assert (logged.order_id, logged.agency, logged.selectors, logged.epoch) == ("O-1", "us.fbi", 4, 7)
    assert logged.commitments == tuple(s.commitment for s in q.private_selectors)
    assert logged.evaluated_at == _NOW
    more = _query(n=2)
    with pytest.raises(errors.ResourceExhausted):
        reopened.take(more, _limits(more), now=_NOW)
    assert reopened.evaluation(more.query_id) is None  # a refused check is not logged as evaluated
    reopened.close()


def test_concurrent_checks_never_pass_a_limit_together(ledger_url: tuple[str, str]) -> None:
    url, prefix = ledger_url
    ledgers = [PrivateLedger(url, table_prefix=prefix) for _ in range(4)]  # as four node processes

    def attempt(i: int) -> bool:
        q = _query(n=1)
        try:
            ledgers[i % 4].take(q, _limits(q, per_order=10, per_agency=100), now=_NOW)
        except errors.ResourceExhausted:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        taken = list(pool.map(attempt, range(40)))
    assert sum(taken) == 10
    assert ledgers[0].used("order:O-1", "2026-12-01") == 10
    assert len(ledgers[0].evaluations()) == 10
    for ledger in ledgers:
        ledger.close()
