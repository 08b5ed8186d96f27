"""A large, real transparency log for the console's tests and benchmark.

The log is written by :class:`~comity.audit.log.TransparencyLog` under a demo federation's log
key, with the events the gateway writes (decisions, forwards, node decisions, disclosures,
failures, refusals, emergency orders and their validation), and cosigned by every node's
witness key, so ``comity audit console`` verifies it under that federation file like the
gateway's own log.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from comity.audit.cosignature import CosignatureSigner
from comity.audit.events import (
    decision_event,
    decode_event,
    disclosed_event,
    emergency_event,
    failed_event,
    forwarded_event,
    node_decision_event,
    refused_event,
    validated_event,
)
from comity.audit.log import TransparencyLog
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.sdk.demo.setup import DemoFederation
from comity.v1 import comity_pb2 as pb

__all__ = ["BuiltLog", "build_console_log", "query_receipt"]

_DENY_RULES = (
    ("SERIOUS_CRIME", "SERIOUS_CRIME"),
    ("PARTICULARITY", "PARTICULARITY"),
    ("JUSTIFICATION", "JUSTIFICATION"),
    ("INDEPENDENT_AUTHORISATION", "INDEPENDENT_AUTHORISATION"),
)
# Offence codes for the entries only (the console shows them; nothing here decides on them).
_OFFENCES = ("CC 346", "18 USC 1030(a)(7)")
_REFUSALS = (("ORDER_EXPIRED", "INDEPENDENT_AUTHORISATION"), ("REPLAYED_QUERY", "AUDIT_FIELDS"))


@dataclass(frozen=True)
class BuiltLog:
    """What was written: the database, its size, and a few known query and order ids."""

    path: Path
    size: int
    query_ids: tuple[str, ...]
    emergency_order: str
    #: Queries the gateway refused (their receipt is their decision entry alone).
    denied: tuple[str, ...] = ()


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _query_events(rng: random.Random, n: int, at: datetime, fed: DemoFederation) -> list[tuple[bytes, list]]:  # type: ignore[type-arg]
    agencies = sorted(fed.layout.agencies)
    agency_id = agencies[n % len(agencies)]
    agency = fed.layout.agencies[agency_id]
    other = fed.layout.agencies[agencies[(n + 1) % len(agencies)]]
    node = next(nf.node_id for nf in fed.layout.nodes.values() if nf.agency == other.agency)
    query_id = f"q-{n:06d}"
    digest = _digest(query_id)
    order_id = f"order-{n // 5:05d}"
    deny = rng.random() < 0.3
    checks = [rng.choice(_DENY_RULES)] if deny else []
    entry, openings = decision_event(
        query_id=query_id,
        query_digest=digest,
        at=at,
        investigator=agency.investigator,
        agency=agency_id,
        target_node=node,
        order_id=order_id,
        offence_code=_OFFENCES[agencies.index(agency_id) % len(_OFFENCES)],
        categories=("SUBSCRIBER",) if n % 3 else ("SUBSCRIBER", "TRAFFIC"),
        allowed=not deny,
        rule_codes=[c for c, _ in checks],
        bundle_digest="sha256:" + "0" * 64,
        selectors=[("EMAIL", f"person{n}@example.org")],
        case_reference=f"CASE-{n // 5:05d}",
        authority=agency.authority,
        order_digest=_digest(order_id),
        checks=checks,
    )
    events: list[tuple[bytes, list]] = [(entry, openings)]  # type: ignore[type-arg]
    if deny:
        return events
    later = at + timedelta(milliseconds=30)
    events.append((forwarded_event(query_id=query_id, query_digest=digest, at=later, node=node), []))
    events.append(
        (
            node_decision_event(
                query_id=query_id, query_digest=digest, at=later, node=node, allowed=True, rule_codes=[],
                bundle_digest="sha256:" + "1" * 64, sealed=b"", node_decision=_digest(f"nd{n}"),
            ),
            [],
        )
    )  # fmt: skip
    if rng.random() < 0.05:
        events.append(
            (
                failed_event(
                    query_id=query_id, query_digest=digest, at=later, node=node, reason="UNAVAILABLE"
                ),
                [],
            )
        )
    else:
        hit = rng.random() < 0.6
        events.append(
            (
                disclosed_event(
                    query_id=query_id, query_digest=digest, at=later, node=node, hit=hit,
                    record_count=rng.randint(1, 4) if hit else 0, records_digest=_digest(f"r{n}"),
                    node_signature=_digest(f"s{n}") * 2,
                ),
                [],
            )
        )  # fmt: skip
    return events


def _extra_events(n: int, at: datetime, fed: DemoFederation) -> list[bytes]:
    agency_id = sorted(fed.layout.agencies)[0]
    agency = fed.layout.agencies[agency_id]
    if n % 97 == 0:
        code, rule = _REFUSALS[n % 2]
        return [
            refused_event(
                query_id=f"r-{n:06d}", query_digest=_digest(f"r{n}"), at=at, investigator=agency.investigator,
                agency=agency_id, reason_code=code, checks=[(code, rule)],
            )
        ]  # fmt: skip
    return []


async def build_console_log(
    fed: DemoFederation, path: Path, *, queries: int, seed: int = 1, now: datetime | None = None
) -> BuiltLog:
    """Write a log of about ``queries`` queries (three to four entries each) over the last 30 days."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    federation = Federation.load(fed.layout.federation_file)
    gateway = fed.layout.gateway
    log_key = SigningKey.load(gateway.log_key, key_id=gateway.log_origin)
    witnesses = [
        CosignatureSigner(
            federation.witness_identity(nf.node_id).name,
            SigningKey.load(nf.witness_key, key_id=nf.node_id).private_key,
        )
        for nf in fed.layout.nodes.values()
    ]
    log = await TransparencyLog.open(
        f"sqlite:///{path}", origin=gateway.log_origin, key=log_key, witnesses=[w.verifier for w in witnesses]
    )
    start = now - timedelta(days=30)
    step = timedelta(days=30) / max(1, queries)
    ids: list[str] = []
    denied: list[str] = []
    emergency_order = "order-emergency-1"
    try:
        for group in range(0, queries, 250):
            batch: list[tuple[bytes, list]] = []  # type: ignore[type-arg]
            for n in range(group, min(queries, group + 250)):
                at = start + step * n
                events = _query_events(rng, n, at, fed)
                if len(events) == 1 and n > 0:
                    denied.append(f"q-{n:06d}")
                batch += events
                batch += [(e, []) for e in _extra_events(n, at, fed)]
                ids.append(f"q-{n:06d}")
            if group == 0:
                batch += _emergency(fed, emergency_order, start, now)
            # Each append joins the queue before its first await, so the log keeps this order.
            results = await asyncio.gather(*(log.append(e, openings=o) for e, o in batch))
            size = results[-1].tree_size
            text = (await log.checkpoint(size)).decode().split("\n\n")[0] + "\n"
            for witness in witnesses:
                await log.add_cosignature(size, witness.cosign(text, timestamp=int(now.timestamp())))
    finally:
        await log.close()
    return BuiltLog(path, size, tuple(ids), emergency_order, tuple(denied))


async def query_receipt(fed: DemoFederation, path: Path, query_id: str) -> pb.Receipt:
    """The receipt the gateway gives for ``query_id``: its entries proved against the newest checkpoint."""
    gateway = fed.layout.gateway
    log = await TransparencyLog.open(
        f"sqlite:///{path}",
        origin=gateway.log_origin,
        key=SigningKey.load(gateway.log_key, key_id=gateway.log_origin),
    )
    try:
        size = await log.tree_size()
        proofs = []
        for index, entry in enumerate(await log.entries(0, size)):
            if getattr(decode_event(entry), "query_id", None) == query_id:
                hashes = await log.inclusion_proof(index, size)
                inclusion = pb.InclusionProof(leaf_index=index, tree_size=size, hashes=hashes)
                proofs.append(pb.EntryProof(entry=entry, inclusion=inclusion))
        return pb.Receipt(
            query_id=query_id,
            query_digest=_digest(query_id),
            entries=proofs,
            checkpoint=pb.Checkpoint(signed_note=await log.checkpoint(size)),
            cosignatures=await log.cosignatures(size),
        )
    finally:
        await log.close()


def _emergency(
    fed: DemoFederation, order_id: str, start: datetime, now: datetime
) -> list[tuple[bytes, list]]:  # type: ignore[type-arg]
    agency_id = sorted(fed.layout.agencies)[0]
    agency = fed.layout.agencies[agency_id]
    used = start + timedelta(hours=1)
    return [
        (
            emergency_event(
                query_id="q-000000", order_id=order_id, order_digest=_digest(order_id), at=used,
                investigator=agency.investigator, agency=agency_id, issuing_country=agency.country,
                authority=agency.authority, validate_by=used + timedelta(hours=48),
            ),
            [],
        ),
        (
            validated_event(
                order_id=order_id, order_digest=_digest(order_id), validation_digest=_digest("v"),
                at=used + timedelta(hours=20), agency=agency_id, authority=agency.authority, confirmed=True,
                late=False,
            ),
            [],
        ),
    ]  # fmt: skip


if __name__ == "__main__":  # pragma: no cover - a manual helper
    import sys

    from comity.sdk.demo.setup import build_demo_federation

    target = Path(sys.argv[1])
    demo = build_demo_federation(target / "federation", people=10)
    built = asyncio.run(build_console_log(demo, target / "audit.db", queries=int(sys.argv[2])))
    print(built.size, "entries in", built.path)
