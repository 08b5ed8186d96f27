"""The SDK's failover across gateway replicas: what it sends again, where, and what it never sends again.

The client under test is the real one, over real TLS on loopback; around it, stand-in gateways
answer each submission as a script says (with the statuses and status details the real gateway
sends, built by the same code), and record every query they received. A closed port is a
replica that is down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.audit.errors import AuditUnavailable
from comity.audit.note import Ed25519Verifier
from comity.core import errors, refusals
from comity.core.bootstrap import init_federation
from comity.core.dsse import PAYLOAD_QUERY, verify_envelope
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.core.rpc import guard_unary, to_trailing_metadata
from comity.core.serving import ServerHandle, start_server
from comity.core.tls import gateway_server_credentials
from comity.gateway.pipeline import _log_down
from comity.gateway.routing import NodeUnavailable
from comity.sdk.client import AsyncClient, Client, Identity
from comity.sdk.demo.setup import free_ports
from comity.sdk.failover import Failover
from comity.sdk.profile import Profile, load_profile
from comity.sdk.query import QuerySpec, parse_selector
from comity.sdk.receipt_refresh import GatewayCheckpoints
from comity.sdk.result import ResponseTampered
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

pytestmark = pytest.mark.asyncio

KEY = SigningKey.generate("us.fbi/agent-1")
SPEC = QuerySpec(target_node="ca-node", selectors=[parse_selector("email:a@example.org")])
Answer = Callable[[], errors.ComityError]
Context = grpc.aio.ServicerContext[object, object]


@dataclass
class StandIn(pb_grpc.GatewayServicer):
    """A gateway that answers every submission with the next error of ``script``, and keeps each query."""

    script: list[Answer]
    received: list[pb.Envelope] = field(default_factory=list)
    delay: float = 0.0

    @guard_unary
    async def Submit(
        self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.QueryResult:
        self.received.append(request.signed_query)
        await asyncio.sleep(self.delay)
        raise self.script.pop(0)()

    @property
    def query_ids(self) -> list[str]:
        return [pb.Query.FromString(e.payload).query_id for e in self.received]


def _log_is_down() -> errors.ComityError:
    return _log_down(AuditUnavailable("the audit log is closed"), disclosing=False)


def _replay_store_down() -> errors.ComityError:
    return errors.Unavailable(
        "the replay store cannot be written", violations=[refusals.violation("REPLAY_UNAVAILABLE")]
    )


def _node_down() -> errors.ComityError:
    return NodeUnavailable("node 'ca-node' cannot be reached, so the query was not answered")


def _denied() -> errors.ComityError:
    return errors.PermissionDenied(
        "refused by policy", violations=[errors.RuleViolationInfo("SERIOUS_CRIME", "not serious", check="X")]
    )


def _quota() -> errors.ComityError:
    return errors.ResourceExhausted("the daily quota is used up")


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path, bytes]:
    layout = init_federation(tmp_path / "fed", gateway_port=1, countries={"US": 2, "CA": 3})
    g = layout.gateway
    return g.tls_cert, g.tls_key, g.ca_cert.read_bytes()


@pytest.fixture
async def gateways(tls: tuple[Path, Path, bytes]) -> AsyncIterator[Callable[..., asyncio.Future[str]]]:
    handles: list[ServerHandle] = []

    async def serve(stand_in: StandIn) -> str:
        handle = await start_server(
            listen="127.0.0.1:0",
            register=lambda server: pb_grpc.add_GatewayServicer_to_server(stand_in, server),
            service_names=[],
            credentials=gateway_server_credentials(tls[0], tls[1]),
        )
        handles.append(handle)
        return f"127.0.0.1:{handle.port}"

    yield serve  # type: ignore[misc]
    for handle in handles:
        await handle.stop(0)


def _client(addresses: list[str], ca: bytes, **kw: object) -> AsyncClient:
    return AsyncClient(addresses, **_settings(ca), **kw)  # type: ignore[arg-type]


def _settings(ca: bytes) -> dict[str, object]:
    log_key = Ed25519Verifier("log", Ed25519PrivateKey.generate().public_key())
    identity = Identity(investigator="us.fbi/agent-1", agency="us.fbi", signing_key=KEY, token="t")
    return {"identity": identity, "node_keys": {}, "log_key": log_key, "root_certificates": ca, "timeout": 10}


def _down() -> Iterator[str]:
    for port in free_ports(3):
        yield f"127.0.0.1:{port}"


def _signed_by_the_investigator(envelope: pb.Envelope) -> None:
    verify_envelope(envelope, payload_type=PAYLOAD_QUERY, keys={KEY.key_id: KEY.verifying_key})


async def test_with_every_replica_down_the_bound_holds_and_the_error_names_each_address(
    tls: tuple[Path, Path, bytes],
) -> None:
    down = list(_down())
    async with _client(down, tls[2], failover=Failover(resubmissions=4, backoff_seconds=0.01)) as client:
        with pytest.raises(errors.Unavailable) as caught:
            await client.query(SPEC)
    err = caught.value
    assert len(err.attempts) == 5  # the first and at most four more
    assert [a.address for a in err.attempts] == [*down, *down[:2]]
    assert len({a.query_id for a in err.attempts}) == 5
    assert err.message.startswith("no gateway replica answered 5 attempts: ")
    for address in down:
        assert address in err.message
    for attempt in err.attempts:
        assert f"query {attempt.query_id}" in err.message
    assert "Traceback" not in err.diagnostics()


async def test_no_resubmission_when_told_not_to(tls: tuple[Path, Path, bytes]) -> None:
    down = list(_down())
    async with _client(down, tls[2], failover=Failover(resubmissions=0)) as client:
        with pytest.raises(errors.Unavailable) as caught:
            await client.query(SPEC)
    assert [a.address for a in caught.value.attempts] == down[:1]


async def test_a_replica_down_sends_the_query_again_through_the_next_with_a_new_id_and_signature(
    tls: tuple[Path, Path, bytes], gateways: Callable[..., asyncio.Future[str]]
) -> None:
    up = StandIn([_denied])
    down = next(_down())
    addresses = [down, await gateways(up)]
    async with _client(addresses, tls[2]) as client:
        with pytest.raises(errors.PermissionDenied) as caught:
            await client.query(SPEC)
        # The replica that answered is asked first from now on.
        assert client.target == addresses[1]
    attempts = caught.value.attempts
    assert [a.address for a in attempts] == addresses
    assert attempts[0].outcome.startswith("UNAVAILABLE: the connection to this replica failed")
    assert attempts[1].query_id == up.query_ids[0] != attempts[0].query_id
    _signed_by_the_investigator(up.received[0])


async def test_a_refusal_is_an_answer_and_is_never_sent_again(
    tls: tuple[Path, Path, bytes], gateways: Callable[..., asyncio.Future[str]]
) -> None:
    for refusal, error in ((_denied, errors.PermissionDenied), (_quota, errors.ResourceExhausted)):
        first, second = StandIn([refusal]), StandIn([_denied])
        addresses = [await gateways(first), await gateways(second)]
        async with _client(addresses, tls[2]) as client:
            with pytest.raises(error) as caught:
                await client.query(SPEC)
        assert len(first.query_ids) == 1 and second.received == []
        assert [a.query_id for a in caught.value.attempts] == first.query_ids


async def test_a_node_that_cannot_be_reached_is_not_a_reason_to_change_replica(
    tls: tuple[Path, Path, bytes], gateways: Callable[..., asyncio.Future[str]]
) -> None:
    first, second = StandIn([_node_down]), StandIn([_denied])
    addresses = [await gateways(first), await gateways(second)]
    async with _client(addresses, tls[2]) as client:
        with pytest.raises(errors.Unavailable) as caught:
            await client.query(SPEC)
    assert second.received == [] and len(caught.value.attempts) == 1
    assert "node 'ca-node' cannot be reached" in caught.value.message


async def test_a_refusal_saying_nothing_was_forwarded_is_sent_again_as_a_new_query(
    tls: tuple[Path, Path, bytes], gateways: Callable[..., asyncio.Future[str]]
) -> None:
    first, second = StandIn([_log_is_down, _replay_store_down]), StandIn([_denied])
    addresses = [await gateways(first), await gateways(second)]
    async with _client(addresses, tls[2], failover=Failover(resubmissions=3, backoff_seconds=0.01)) as client:
        with pytest.raises(errors.PermissionDenied) as caught:
            await client.query(SPEC)
    attempts = caught.value.attempts
    # first (log down) → second (denied: an answer, the end).
    assert [a.address for a in attempts] == addresses
    assert "LOG_UNAVAILABLE" in attempts[0].outcome
    assert len({*first.query_ids, *second.query_ids}) == 2
    assert [a.query_id for a in attempts] == [*first.query_ids, *second.query_ids]


async def test_the_bound_holds_for_refusals_before_forwarding_too(
    tls: tuple[Path, Path, bytes], gateways: Callable[..., asyncio.Future[str]]
) -> None:
    only = StandIn([_log_is_down] * 5)
    async with _client(
        [await gateways(only)], tls[2], failover=Failover(resubmissions=2, backoff_seconds=0.01)
    ) as client:
        with pytest.raises(errors.Unavailable) as caught:
            await client.query(SPEC)
    assert len(only.received) == 3 and len(set(only.query_ids)) == 3
    assert caught.value.check_codes == ["LOG_UNAVAILABLE"]  # the gateway's own words reach the caller
    assert len(caught.value.attempts) == 3


async def test_a_missed_deadline_is_not_sent_again(
    tls: tuple[Path, Path, bytes], gateways: Callable[..., asyncio.Future[str]]
) -> None:
    slow, second = StandIn([_denied], delay=5.0), StandIn([_denied])
    addresses = [await gateways(slow), await gateways(second)]
    client = AsyncClient(addresses, **{**_settings(tls[2]), "timeout": 0.5})  # type: ignore[arg-type]
    async with client:
        with pytest.raises(errors.DeadlineExceeded) as caught:
            await client.query(SPEC)
    assert second.received == [] and len(caught.value.attempts) == 1


async def test_the_blocking_client_fails_over_the_same_way(
    tls: tuple[Path, Path, bytes], gateways: Callable[..., asyncio.Future[str]]
) -> None:
    up = StandIn([_denied])
    addresses = [next(_down()), await gateways(up)]

    def run() -> errors.ComityError:
        with Client(addresses, **_settings(tls[2])) as client:  # type: ignore[arg-type]
            try:
                client.query(SPEC)
            except errors.ComityError as err:
                return err
        raise AssertionError("the stand-in refuses every query")

    err = await asyncio.to_thread(run)
    assert isinstance(err, errors.PermissionDenied)
    assert [a.address for a in err.attempts] == addresses
    assert err.attempts[1].query_id == up.query_ids[0] != err.attempts[0].query_id


async def test_a_profile_follows_the_federations_replicas_when_it_names_one_of_them(tmp_path: Path) -> None:
    layout = init_federation(tmp_path / "fed", gateway_port=7443, countries={"US": 2, "CA": 3})
    text = layout.federation_file.read_text()
    endpoint = f'endpoint = "{layout.gateway.endpoint}"\n'
    layout.federation_file.write_text(
        text.replace(endpoint, f'{endpoint}replica_endpoints = ["127.0.0.1:7444", "127.0.0.1:7445"]\n', 1)
    )
    federation = Federation.load(layout.federation_file)
    path = tmp_path / "profile.toml"
    path.write_text(
        '[investigator]\nid = "us.fbi/agent-1"\nagency = "us.fbi"\nkey = "k.pem"\n\n'
        '[gateway]\naddress = "127.0.0.1:7444"\nreplica_addresses = ["10.0.0.9:7443"]\n'
        f'ca = "{layout.gateway.ca_cert}"\nfederation = "{layout.federation_file}"\nresubmissions = 1\n'
    )
    base = load_profile(path)
    assert base.resubmissions == 1 and base.replica_addresses == ("10.0.0.9:7443",)
    assert base.addresses(federation) == (
        "127.0.0.1:7444",
        "10.0.0.9:7443",
        layout.gateway.endpoint,
        "127.0.0.1:7445",
    )
    # An address the file does not list (a load balancer) is used with the profile's own list only.
    lb = Profile(**{**base.__dict__, "address": "gateway.example:443"})
    assert lb.addresses(federation) == ("gateway.example:443", "10.0.0.9:7443")


async def test_a_profile_refuses_a_negative_bound(tmp_path: Path) -> None:
    path = tmp_path / "profile.toml"
    path.write_text(
        '[investigator]\nid = "a"\nagency = "b"\nkey = "k.pem"\n\n'
        '[gateway]\naddress = "127.0.0.1:1"\nca = "ca.crt"\nfederation = "f.toml"\nresubmissions = -1\n'
    )
    with pytest.raises(errors.ConfigError, match="resubmissions"):
        load_profile(path)


class Reads(pb_grpc.GatewayServicer, pb_grpc.AuditLogServicer):
    """A gateway whose reads and reviews answer: filters, a checkpoint, and a review refused as
    already made; it keeps what it received."""

    def __init__(self) -> None:
        self.received: list[object] = []

    async def GetPrivateFilters(
        self, request: pb.GetPrivateFiltersRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.PrivateFilters:
        self.received.append(request)
        return pb.PrivateFilters(epoch=7)

    async def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.CheckpointResponse:
        self.received.append(request)
        return pb.CheckpointResponse(log_size=42)

    @guard_unary
    async def ValidateEmergency(
        self, request: pb.ValidateEmergencyRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ValidateEmergencyResponse:
        self.received.append(request)
        raise errors.AlreadyExists("emergency order 'E-1' was already reviewed")


class Streams(pb_grpc.GatewayServicer):
    """A gateway that streams ``records`` records of each query, then ends as ``end`` says."""

    def __init__(
        self, records: int, end: Callable[[grpc.aio.ServicerContext[object, object]], object]
    ) -> None:
        self.records = records
        self.end = end
        self.query_ids: list[str] = []

    async def SubmitStream(
        self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> AsyncIterator[pb.ResultChunk]:
        self.query_ids.append(pb.Query.FromString(request.signed_query.payload).query_id)
        if self.records:
            chunk = pb.ResultChunk()
            chunk.records.records.extend(pb.Record(record_id=f"r{i}") for i in range(self.records))
            yield chunk
        await self.end(context)  # type: ignore[misc]


async def _gone(context: grpc.aio.ServicerContext[object, object]) -> None:
    # What a replica going away looks like to the client: UNAVAILABLE, and no Comity status details.
    await context.abort(grpc.StatusCode.UNAVAILABLE, "Socket closed")


async def _refuse(context: grpc.aio.ServicerContext[object, object]) -> None:
    err = _denied()
    await context.abort(err.code, err.message, trailing_metadata=to_trailing_metadata(err))


async def _serve(tls: tuple[Path, Path, bytes], servicer: object, handles: list[ServerHandle]) -> str:
    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_GatewayServicer_to_server(servicer, server)  # type: ignore[arg-type]
        if isinstance(servicer, pb_grpc.AuditLogServicer):
            pb_grpc.add_AuditLogServicer_to_server(servicer, server)

    handle = await start_server(
        listen="127.0.0.1:0",
        register=register,
        service_names=[],
        credentials=gateway_server_credentials(tls[0], tls[1]),
    )
    handles.append(handle)
    return f"127.0.0.1:{handle.port}"


@pytest.fixture
async def handles() -> AsyncIterator[list[ServerHandle]]:
    started: list[ServerHandle] = []
    yield started
    for handle in started:
        await handle.stop(0)


async def test_a_stream_goes_to_the_next_replica_until_its_first_record(
    tls: tuple[Path, Path, bytes], handles: list[ServerHandle]
) -> None:
    going, refusing = Streams(0, _gone), Streams(0, _refuse)
    addresses = [await _serve(tls, going, handles), await _serve(tls, refusing, handles)]
    async with _client(addresses, tls[2]) as client:
        with pytest.raises(errors.PermissionDenied) as caught:
            async for _ in client.stream(SPEC):
                pass
    assert [a.address for a in caught.value.attempts] == addresses
    assert [a.query_id for a in caught.value.attempts] == [*going.query_ids, *refusing.query_ids]
    assert going.query_ids[0] != refusing.query_ids[0]


async def test_a_stream_whose_records_come_before_the_statement_yields_none_and_is_not_sent_again(
    tls: tuple[Path, Path, bytes], handles: list[ServerHandle]
) -> None:
    # The gateway sends the verified summary first: records before it are no answer to trust.
    broken, other = Streams(2, _gone), Streams(0, _refuse)
    addresses = [await _serve(tls, broken, handles), await _serve(tls, other, handles)]
    seen = []
    async with _client(addresses, tls[2]) as client:
        with pytest.raises(ResponseTampered) as caught:
            async for record in client.stream(SPEC):
                seen.append(record)
    assert seen == [] and other.query_ids == [] and len(broken.query_ids) == 1
    assert "did not start with the node's statement" in caught.value.message


class Going(pb_grpc.GatewayServicer):
    """A replica that goes away during each call it receives."""

    def __init__(self) -> None:
        self.query_ids: list[str] = []

    async def Submit(
        self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.QueryResult:
        self.query_ids.append(pb.Query.FromString(request.signed_query.payload).query_id)
        await _gone(context)
        raise AssertionError("abort raises")


async def test_a_replica_that_goes_away_mid_call_is_left_for_the_next(
    tls: tuple[Path, Path, bytes], handles: list[ServerHandle]
) -> None:
    # Not a refused connection: the call reached the replica, which went away before answering.
    going, refusing = Going(), StandIn([_denied, _denied])
    addresses = [await _serve(tls, going, handles), await _serve(tls, refusing, handles)]
    async with _client(addresses, tls[2]) as client:
        with pytest.raises(errors.PermissionDenied) as first:
            await client.query(SPEC)
        with pytest.raises(errors.PermissionDenied) as second:
            await client.query(SPEC)
    assert [a.address for a in first.value.attempts] == addresses
    assert first.value.attempts[0].query_id == going.query_ids[0] != refusing.query_ids[0]
    # The replica that answered last is asked first.
    assert [a.address for a in second.value.attempts] == addresses[1:] and len(going.query_ids) == 1


async def test_reads_and_reviews_go_to_the_next_replica(
    tls: tuple[Path, Path, bytes], handles: list[ServerHandle]
) -> None:
    reads = Reads()
    addresses = [next(_down()), await _serve(tls, reads, handles)]
    async with _client(addresses, tls[2]) as client:
        filters = await client.private_filters("ca-node")
        assert filters.epoch == 7 and client.target == addresses[1]
    review = pb.Envelope(payload=b"review")
    async with _client(addresses, tls[2]) as client:
        with pytest.raises(errors.AlreadyExists) as caught:
            await client.validate_emergency(review)
    # The same signed review, sent again as it was: it has no query id.
    assert [a.address for a in caught.value.attempts] == addresses
    assert reads.received[-1] == pb.ValidateEmergencyRequest(signed_validation=review)
    source = GatewayCheckpoints(addresses, root_certificates=tls[2], timeout=10)
    try:
        response = await asyncio.to_thread(source.quorum_checkpoint, 0)
        assert response.log_size == 42 and source.target == addresses[1]
    finally:
        source.close()
