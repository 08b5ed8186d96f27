"""Starting a data node from its configuration file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from comity.audit.witness import Witness
from comity.core.federation import Federation, Node
from comity.core.federation_watch import FederationWatch, load_trusted, warn_if_own_key_ends
from comity.core.keys import SigningKey, passphrase_from_env
from comity.core.serving import ServerHandle, start_server
from comity.core.tls_reload import ServerTls
from comity.nodes.admission import Admission
from comity.nodes.config import NodeConfig, node_schema, open_source
from comity.nodes.decisions import NodeDecisions
from comity.nodes.hitref import HitReferences
from comity.nodes.inbound import InboundPolicy, inbound_policies
from comity.nodes.logsync import GatewayLog
from comity.nodes.membership import Membership
from comity.nodes.outbox import Outbox
from comity.nodes.private_admission import PrivateChecks, PrivateLimits
from comity.nodes.private_filters import KeySchedule, PrivateFilters
from comity.nodes.private_state import PrivateLedger
from comity.nodes.service import DataNodeService
from comity.nodes.state import NodeState
from comity.nodes.store import RecordStore
from comity.nodes.subjects import SubjectReader
from comity.nodes.witness_service import WitnessService
from comity.nodes.witness_state import HELD, check_witness_state, hold_until_checked
from comity.policy.agreements import ByAgreement
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["start_node"]

_log = logging.getLogger("comity.node")

SERVICE = pb.DESCRIPTOR.services_by_name["DataNode"].full_name
WITNESS_SERVICE = pb.DESCRIPTOR.services_by_name["Witness"].full_name


async def _refresh(filters: PrivateFilters, every: timedelta) -> None:
    """Rotate the OPRF key on schedule and add segments for records loaded since (a timer).

    The first build happens at the first private request or the first round, whichever comes
    first; a private check that comes before it is built waits for it.
    """
    # Nothing at start-up: a build competes for the CPU with starting to serve (and a gateway
    # whose first calls find the node not up yet puts its channel into reconnect back-off).
    while True:
        await asyncio.sleep(every.total_seconds())
        try:
            await asyncio.to_thread(filters.refresh)
        except Exception:  # the next round tries again; the current filters stay served
            _log.exception("could not refresh the private hit check filters")


async def start_node(
    config: NodeConfig,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    reinitialise_witness: bool = False,
    gateway_wait_seconds: float = 20.0,
) -> ServerHandle:
    """Load everything the node needs, refuse to start on any error, then serve.

    The witness state must be at least what the gateway's log shows this witness cosigned
    (see :mod:`comity.nodes.witness_state`); ``reinitialise_witness`` is the operator's
    explicit choice to continue from the log's record after losing it. ``gateway_wait_seconds``
    is how long the start waits for the gateway's log before holding the witness instead.
    """
    federation = load_trusted(config.federation, config.federation_sha256, now=clock())
    watch = FederationWatch(config.federation, federation, clock=clock)
    node = federation.node(config.node_id)
    response_key = SigningKey.load(config.response_key, key_id=node.id, passphrase=passphrase_from_env())
    witness_key = SigningKey.load(config.witness_key, key_id=node.id, passphrase=passphrase_from_env())
    state_existed = config.witness_state.exists()
    schema = node_schema(config)
    source = open_source(config, schema=schema)
    witness = Witness.open(
        config.witness_state,
        name=node.id,
        key=witness_key,
        log_origin=federation.gateway.log.origin,
        log_key=federation.gateway.log.key,
        log_keys=federation.gateway.log.keys,
    )
    try:
        checked = await check_witness_state(
            witness,
            existed=state_existed,
            state=config.witness_state,
            federation=federation,
            node_id=node.id,
            reinitialise=reinitialise_witness,
            wait_seconds=gateway_wait_seconds,
        )
    except BaseException:
        witness.close()
        source.close()
        if not state_existed:
            config.witness_state.unlink(missing_ok=True)  # leave it missing, as it was
        raise
    if not checked:
        witness.hold(HELD)  # before the port opens: nothing is cosigned unchecked
    hits = HitReferences(response_key.private_key.private_bytes_raw())
    state = NodeState(config.store_url)
    subjects = SubjectReader(source, schema)

    def policies_under(
        version: Federation, ours: Node, previous: ByAgreement[InboundPolicy] | None = None
    ) -> ByAgreement[InboundPolicy]:
        return inbound_policies(
            version,
            ours,
            store=config.bundle_store,
            configured=config.policy_bundle,
            schema=schema,
            subjects=subjects,
            state=state,
            clock=clock,
            previous=previous,
        )

    try:
        policies = policies_under(federation, node)
    except BaseException:
        witness.close()
        source.close()
        state.close()
        raise
    gateway_log = GatewayLog(federation)
    membership = Membership(node.id)
    outbox = Outbox(config.outbox_url or config.store_url)
    decisions = NodeDecisions(node_id=node.id, key=response_key, outbox=outbox, clock=clock)
    # Private hit checks need the node's own store (their filters are built from it).
    ledger = PrivateLedger(config.store_url) if isinstance(source, RecordStore) else None
    admission = Admission(
        node=node,
        federation=federation,
        policies=policies,
        witness=witness,
        gateway_log=gateway_log,
        hit_references=hits,
        clock=clock,
        decisions=decisions,
        watch=watch,
        private_ledger=ledger,
        freshness=timedelta(seconds=config.freshness_seconds),
        membership=membership,
    )
    private = None
    if ledger is not None and isinstance(source, RecordStore):
        filters = PrivateFilters(
            node_id=node.id,
            country=node.country,
            store=source,
            schema=schema,
            response_key=response_key,
            schedule=KeySchedule.from_response_key(response_key, rotation=config.private.rotation),
            clock=clock,
            inverse_fp_rate=config.private.inverse_fp_rate,
        )
        private = PrivateChecks(
            node_id=node.id,
            admission=admission,
            filters=filters,
            response_key=response_key,
            decisions=decisions,
            ledger=ledger,
            limits=PrivateLimits(config.private.per_order_per_day, config.private.per_agency_per_day),
            clock=clock,
        )
    service = DataNodeService(
        node_id=node.id,
        federation=federation,
        admission=admission,
        witness=witness,
        source=source,
        schema=schema,
        subjects=subjects,
        country=node.country,
        response_key=response_key,
        hit_references=hits,
        max_records=config.max_records,
        stream_batch=config.stream_batch,
        clock=clock,
        decisions=decisions,
        private=private,
        membership=membership,
    )
    # Its own certificate follows its files, the gateway client certificates it trusts the
    # federation version in use, each from the next TLS handshake.
    server_tls = ServerTls.node(
        config.tls_cert,
        config.tls_key,
        federation=federation,
        node_id=node.id,
        passphrase=passphrase_from_env(),
    )
    server_tls.follow(watch)
    credentials = server_tls.credentials()
    witness_service = WitnessService(
        witness, gateway_pins=federation.gateway.client_pins, membership=membership
    )

    def prepared(new: Federation) -> Callable[[], None]:
        # Built before anything changes (off the event loop): the new agreements' inbound
        # policies, their bundles loaded and self-tested. A failure refuses the whole version.
        if all(n.id != node.id for n in new.nodes()):
            return prepared_removal(new)
        ours = new.node(node.id)
        new_policies = policies_under(new, ours, admission.policies)
        use_log_endpoints = gateway_log.prepare(new)  # last: nothing after it refuses the version

        def reloaded() -> None:
            # Investigators, authorities, the gateway's decision keys, log key history and
            # endpoints, its client certificate pins and the agreements follow the file at once.
            witness.use_log_keys(new.gateway.log.keys)
            use_log_endpoints()
            admission.use_federation(new, new_policies)
            service.use_gateway_pins(new.gateway.client_pins)
            witness_service.use_gateway_pins(new.gateway.client_pins)
            _warn_if_retired(ours, response_key, witness_key, now=clock())
            membership.listed(new.version)

        return reloaded

    def prepared_removal(new: Federation) -> Callable[[], None]:
        # The signers' threshold removed this node: it fails closed (and follows the file, so a
        # later version listing it again is prepared as usual).
        use_log_endpoints = gateway_log.prepare(new)

        def removed() -> None:
            use_log_endpoints()
            membership.removed(new.version)

        return removed

    watch.prepare_with(prepared)

    def register(server: object) -> None:
        pb_grpc.add_DataNodeServicer_to_server(service, server)
        pb_grpc.add_WitnessServicer_to_server(witness_service, server)

    handle = await start_server(
        listen=config.listen,
        register=register,
        service_names=[SERVICE, WITNESS_SERVICE],
        credentials=credentials,
        max_message_bytes=config.max_message_bytes,
        health_listen=config.health_listen,
    )
    membership.follow_health(handle.health, [SERVICE, WITNESS_SERVICE])
    if private is not None:
        refresher = asyncio.create_task(_refresh(private.filters, config.private.refresh))
        handle.on_stop.append(refresher.cancel)
    if ledger is not None:
        handle.on_stop.append(ledger.close)
    if config.federation_poll_seconds > 0:
        watch.start(config.federation_poll_seconds)
    handle.on_stop.append(watch.stop)
    handle.on_stop.append(service.close)
    handle.on_stop.append(source.close)
    handle.on_stop.append(state.close)
    handle.on_stop.append(witness.close)
    if not checked:  # the gateway was unreachable: cosign nothing until the state is compared
        stop_check = hold_until_checked(
            witness, state=config.witness_state, federation=lambda: watch.current, node_id=node.id
        )
        handle.on_stop.insert(0, stop_check)
    handle.on_stop.append(gateway_log.close)
    handle.on_stop.append(outbox.close)
    return handle


def _warn_if_retired(node: Node, response_key: SigningKey, witness_key: SigningKey, *, now: datetime) -> None:
    """Say so when the trusted file ends (or has ended) this node's own keys (read at start only)."""
    for what, key, history, field in (
        ("response", response_key, node.response_keys, "keys.response_key"),
        ("witness", witness_key, node.witness_keys, "keys.witness_key"),
    ):
        warn_if_own_key_ends(
            _log, who="node", what=what, field=field, key=key.verifying_key, history=history, now=now
        )
