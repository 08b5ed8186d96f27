"""Comity's full secured path as a workload: SDK AsyncClient → gateway → node → back.

The query is the demo's allowed Canada → United States FETCH of subscriber records (the RCMP
scenario: a judicial order, a serious offence, no hit reference needed). Every call is a new
signed query with a fresh query id, because the gateway refuses a replayed one; the signed
order is reused, as an investigator would reuse it until it expires.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from comity.gateway.routing import NodeRouter
from comity.sdk.client import AsyncClient
from comity.sdk.demo.run import Scenario, running_federation, scenarios
from comity.sdk.demo.setup import DemoFederation
from comity.sdk.profile import Profile, load_profile
from comity.sdk.query import QuerySpec, Selector, read_order_file
from comity.v1 import comity_pb2 as pb

__all__ = ["WORKLOAD", "PayloadSizes", "measure_payload_sizes", "query_spec", "workload"]

# The scenario whose query the benchmark repeats.
WORKLOAD = "RCMP fetches"


def _scenario(fed: DemoFederation) -> Scenario:
    return next(s for s in scenarios(fed) if s.title.startswith(WORKLOAD))


def query_spec(fed: DemoFederation) -> QuerySpec:
    """The workload's query, with its order signed once (each call then takes a fresh query id)."""
    s = _scenario(fed)
    order = fed.orders.get(s.order.order_id) or fed.sign_order(s.order, now=datetime.now(UTC))
    return QuerySpec(
        target_node=s.node,
        selectors=[Selector(t.name, s.person.selectors[t]) for t in s.order.selector_types],
        categories=[c.lower() for c in s.categories],
        kind=s.kind,
        case_reference=s.order.order_id,
        facts=s.facts,
        link_to_offence=s.link,
        legal_order=read_order_file(order),
        time_range=s.time_range,
    )


def workload_profile(fed: DemoFederation) -> Profile:
    """The workload's investigator profile."""
    return load_profile(fed.profiles[_scenario(fed).agency])


def client_for(fed: DemoFederation) -> AsyncClient:
    """An SDK client with the workload's investigator profile."""
    return workload_profile(fed).async_client()


def workload(client: AsyncClient, spec: QuerySpec) -> Callable[[], Awaitable[object]]:
    """One call = one new verified query through the SDK (signing and receipt checks included)."""

    async def call() -> object:
        result = await client.query(replace(spec, query_id=str(uuid.uuid4())))
        if not result.records:
            raise RuntimeError("the workload's query returned no records")
        return result

    return call


@dataclass(frozen=True)
class PayloadSizes:
    """Serialized message sizes on each hop of one workload query, in bytes."""

    submit_request: int  # client → gateway
    execute_request: int  # gateway → node
    node_result: int  # node → gateway
    gateway_result: int  # gateway → client
    metadata: dict[str, str]  # the client's request metadata (the bearer token)
    records: int


async def measure_payload_sizes(fed: DemoFederation) -> PayloadSizes:
    """Run the workload once in-process and record what crosses each hop.

    The gateway's node router is wrapped on this one instance (no code is changed) so the
    gateway → node request and the node's answer can be sized; the client's request is
    rebuilt the way the SDK builds it.
    """
    sizes: dict[str, int] = {}
    async with running_federation(fed) as running:
        router: NodeRouter = running.gateway.router
        original = router.execute

        async def sized(node_id: str, request: pb.ExecuteRequest, **kw: object) -> pb.QueryResult:
            result = await original(node_id, request, **kw)  # type: ignore[arg-type]
            sizes["execute"], sizes["node"] = request.ByteSize(), result.ByteSize()
            return result

        router.execute = sized  # type: ignore[method-assign]
        client = client_for(fed)
        try:
            spec = replace(query_spec(fed), query_id=str(uuid.uuid4()))
            stub = client._stub  # the SDK keeps it private; wrapped here only to size the answer
            submit = stub.Submit

            async def sized_submit(req: pb.SubmitRequest, **kw: object) -> pb.QueryResult:
                answer: pb.QueryResult = await submit(req, **kw)
                sizes["submit"], sizes["answer"] = req.ByteSize(), answer.ByteSize()
                return answer

            stub.Submit = sized_submit
            result = await client.query(spec)
            metadata = dict(client.identity.bearer())
        finally:
            await client.close()
    return PayloadSizes(
        submit_request=sizes["submit"],
        execute_request=sizes["execute"],
        node_result=sizes["node"],
        gateway_result=sizes["answer"],
        metadata=metadata,
        records=len(result.records),
    )
