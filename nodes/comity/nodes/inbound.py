"""A node's inbound rules per agreement: the bundle its country names for each requesting country.

Each agreement the node's country is party to names the node country's inbound bundle by
digest (``[agreements.inbound]``). The node loads every one at start-up and decides a query
under the bundle of the agreement covering (requesting country, this country) at the time; a
query that no agreement covers is refused with ``NO_AGREEMENT``. Everything a bundle governs at
the node travels with it: the engine, the own-person check, the withholding duties and the
use restrictions sent with every answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from comity.core.agreements import Agreement
from comity.core.federation import Federation, Node
from comity.nodes.minimise import Minimiser, WithholdingRule
from comity.nodes.schema import Schema
from comity.nodes.state import NodeState
from comity.nodes.subjects import SubjectReader
from comity.nodes.targeting import Targeting
from comity.policy.agreements import ByAgreement, load_policies
from comity.policy.bundle import PolicyBundle
from comity.policy.engine import PolicyEngine
from comity.v1 import comity_pb2 as pb

__all__ = ["InboundPolicy", "inbound_digest", "inbound_policies"]


@dataclass(frozen=True)
class InboundPolicy:
    """One inbound bundle, and what the node builds from it."""

    bundle: PolicyBundle
    engine: PolicyEngine
    targeting: Targeting
    minimiser: Minimiser
    use_restrictions: list[pb.UseRestriction]


def _withholding(bundle: PolicyBundle, country: str) -> list[WithholdingRule]:
    """The bundle's withholding duties as the minimiser's rules for this node's country."""
    return [
        WithholdingRule.own_persons(
            country, fields=rule.fields or None, withhold_unknown=rule.withhold_unknown
        )
        for rule in bundle.minimisation.withhold
    ]


def inbound_policies(
    federation: Federation,
    node: Node,
    *,
    store: Path | None,
    configured: str,
    schema: Schema,
    subjects: SubjectReader,
    state: NodeState,
    clock: Callable[[], datetime],
    previous: ByAgreement[InboundPolicy] | None = None,
) -> ByAgreement[InboundPolicy]:
    """The node's inbound policy under every agreement its country is party to (fail closed);
    with ``previous`` (the set in use), what it built is used again for the digests it shares."""

    def build(bundle: PolicyBundle) -> InboundPolicy:
        targeting = Targeting(
            reader=subjects, state=state, bundle=bundle, node_id=node.id, country=node.country, clock=clock
        )
        restrictions = [
            pb.UseRestriction(code=r.code, description=r.description, legal_basis=r.legal_basis)
            for r in bundle.use_restrictions
        ]
        return InboundPolicy(
            bundle=bundle,
            engine=PolicyEngine(bundle),
            targeting=targeting,
            minimiser=Minimiser(schema, _withholding(bundle, node.country)),
            use_restrictions=restrictions,
        )

    return load_policies(
        federation,
        store=store,
        configured=configured,
        digest_of=inbound_digest(node),
        build=build,
        what=f"{node.country} inbound",
        previous=previous,
    )


def inbound_digest(node: Node) -> Callable[[Agreement], str | None]:
    """Which of an agreement's bundles a node enforces: its country's inbound bundle."""
    return lambda agreement: agreement.inbound_digest(node.country)
