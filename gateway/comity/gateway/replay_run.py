"""Replaying a range of the log: the gateway's decisions and the nodes', in log order.

The log is read from its start whatever the range, so the quota counts before each decision
are those the order of the log gives (:class:`~comity.gateway.replay.LogOrder` for the gateway,
:class:`~comity.gateway.replay_node.NodeCounts` for each node).
"""

from __future__ import annotations

from collections.abc import Iterable

from comity.audit.errors import AuditError
from comity.audit.events import DecisionEvent, FailedEvent, NodeDecisionEvent, decode_event
from comity.audit.store import LogStore
from comity.gateway.replay import LogOrder, Replayed, replay_decision
from comity.gateway.replay_node import NodeCounts, SealedOpener, replay_node_decision
from comity.policy.bundle_store import BundleStore
from comity.v1 import comity_pb2 as pb

__all__ = ["replay_log"]


def replay_log(
    store: LogStore,
    *,
    bundles: BundleStore,
    start: int = 0,
    end: int | None = None,
    orders: Iterable[tuple[bytes, pb.LegalOrder]] = (),
    sealed: SealedOpener | None = None,
) -> list[Replayed]:
    """Replay every ``decision`` and ``node_decision`` entry in ``[start, end)``.

    ``sealed`` opens the nodes' sealed reasons (the responding country's legal officers hold
    them); without it node decisions are reported as skipped.
    """
    stop = store.tree_size() if end is None else min(end, store.tree_size())
    by_digest = {digest.hex(): order for digest, order in orders}
    seen, nodes = LogOrder(), NodeCounts()
    decisions: dict[str, tuple[int, DecisionEvent]] = {}
    results: list[Replayed] = []
    for index, _, data in store.iter_entries(stop):
        try:
            event = decode_event(data)
        except AuditError as exc:
            if index >= start:
                results.append(Replayed(index, "", "", differences=[f"unreadable entry: {exc.message}"]))
            continue
        if isinstance(event, DecisionEvent):
            if index >= start:
                results.append(
                    replay_decision(
                        index,
                        event,
                        store.openings(index),
                        bundles=bundles,
                        counts=seen.before(event),
                        orders=by_digest,
                    )
                )
            seen.count(event)
            decisions[event.query_digest] = (index, event)
        elif isinstance(event, NodeDecisionEvent):
            gateway_index, gateway = decisions.get(event.query_digest, (-1, None))
            if index >= start:
                results.append(
                    replay_node_decision(
                        index,
                        event,
                        gateway,
                        store.openings(gateway_index) if gateway is not None else [],
                        bundles=bundles,
                        counts=nodes.before(event, gateway) if gateway is not None else (0, 0),
                        sealed=sealed,
                        orders=by_digest,
                    )
                )
            if gateway is not None:
                nodes.count(event, gateway)
        elif isinstance(event, FailedEvent) and event.quota_released:
            released = decisions.pop(event.query_digest, None)
            if released is not None:
                seen.release(released[1])
    return results
