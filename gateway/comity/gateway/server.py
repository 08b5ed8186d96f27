"""Starting the gateway from its configuration file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from comity.audit.quorum import Quorum
from comity.audit.readers import Readership
from comity.core.federation import Federation
from comity.core.federation_watch import FederationWatch, load_trusted, warn_if_own_key_ends
from comity.core.keys import SigningKey, passphrase_from_env
from comity.core.orders import OrderVerifier
from comity.core.queries import DEFAULT_SKEW
from comity.core.replay import ReplayStore
from comity.core.serving import ServerHandle, start_server
from comity.core.sql import parse_database_url
from comity.core.tasks import cancel_and_wait
from comity.core.tls_reload import GatewayClientTls, ServerTls
from comity.core.tokens import TokenVerifier
from comity.core.writer_lock import lock_sqlite_writer
from comity.gateway.audit_service import AuditLogService
from comity.gateway.checkpoints import CheckpointFinder
from comity.gateway.client_certificate import follow_client_certificate
from comity.gateway.config import GatewayConfig
from comity.gateway.emergency import EmergencyTracker
from comity.gateway.leadership import Leadership
from comity.gateway.ledger import Ledger
from comity.gateway.node_channels import routes_of
from comity.gateway.node_decisions import NodeDecisionLog
from comity.gateway.pipeline import Limits, Pipeline
from comity.gateway.pruning import Pruning
from comity.gateway.quota_state import QuotaCache
from comity.gateway.recovery import Recovery, RecoveryLoop
from comity.gateway.refusal_limits import RefusalLimits
from comity.gateway.replication import require_replicated
from comity.gateway.reuse import ReuseStore, load_reuse_key
from comity.gateway.routing import NodeRouter
from comity.gateway.service import GatewayService
from comity.gateway.witnessing import WitnessingLoop, witnessing_for
from comity.policy.agreements import ByAgreement, load_policies
from comity.policy.engine import PolicyEngine
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["RunningGateway", "start_gateway"]

_log = logging.getLogger("comity.gateway")

# How often kept failure entries are retried and ended rate-limit windows are logged.
_HOUSEKEEPING_SECONDS = 2.0

SERVICES = [pb.DESCRIPTOR.services_by_name[name].full_name for name in ("Gateway", "AuditLog")]


@dataclass
class RunningGateway:
    """A started gateway: the server handle and the parts tests and the demo look at."""

    handle: ServerHandle
    ledger: Ledger
    router: NodeRouter
    witnessing: WitnessingLoop | None = None
    pipeline: Pipeline | None = None
    recovery: RecoveryLoop | None = None

    def start_background(self) -> None:
        """Start the loops that call the nodes (witnessing, recovery) left for the caller.

        For ``start_gateway(..., start_witnessing=False)``, once the nodes are up.
        """
        if self.witnessing is not None:
            self.witnessing.start(self.handle.health)
        if self.recovery is not None:
            self.recovery.start()


async def start_gateway(
    config: GatewayConfig,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    start_witnessing: bool = True,
) -> RunningGateway:
    """Load everything the gateway needs, refuse to start on any error, then serve.

    An SQLite log has one writer: a second gateway process over the same file refuses to start.
    ``start_witnessing=False`` leaves the witnessing and recovery loops for the caller to start
    (with :meth:`RunningGateway.start_background`) once the nodes are up, so no node channel
    starts in reconnect back-off.
    """
    if config.replicated:
        await asyncio.to_thread(
            require_replicated,
            config.audit_url,
            config.replay_url,
            allow_asynchronous=config.allow_asynchronous_replication,
        )
    writer = lock_sqlite_writer(
        parse_database_url(config.audit_url, field="audit.url"), what="the audit log", field="audit.url"
    )
    try:
        running = await _start_gateway(config, clock=clock, start_witnessing=start_witnessing)
    except BaseException:
        if writer is not None:
            writer.release()
        raise
    if writer is not None:
        running.handle.on_stop.append(writer.release)
    return running


async def _start_gateway(
    config: GatewayConfig, *, clock: Callable[[], datetime], start_witnessing: bool
) -> RunningGateway:
    federation = load_trusted(config.federation, config.federation_sha256, now=clock())
    watch = FederationWatch(config.federation, federation, clock=clock)
    secret = passphrase_from_env()
    decision_key = SigningKey.load(config.decision_key, key_id=federation.gateway.id, passphrase=secret)
    log_key = SigningKey.load(config.log_key, key_id=federation.gateway.log.origin, passphrase=secret)
    policies = gateway_policies(federation, config)
    # Every witness (node or independent), each under the key it held when it cosigned; the
    # log key by tree size: both follow the federation file's key histories across rotations.
    ledger = await Ledger.open(
        config.audit_url,
        origin=federation.gateway.log.origin,
        key=log_key,
        batch_interval=config.batch_interval_ms / 1000,
        log_keys=federation.gateway.log.keys,
        cosigners=Quorum.of_federation(federation),
    )

    # The client certificate the gateway shows to the nodes and the independent witnesses,
    # followed on disk (see the poll below).
    node_credentials = GatewayClientTls(
        config.client_cert, config.client_key, current=lambda: watch.current, passphrase=secret
    )
    server_tls = ServerTls.gateway(config.tls_cert, config.tls_key, federation=federation, passphrase=secret)
    server_tls.follow(watch)

    router = NodeRouter.of_federation(
        federation,
        node_credentials,
        deadline=config.node_deadline_seconds,
        max_message_bytes=config.max_message_bytes,
    )
    # The counts that bind are in the log database; this is only the process's first guess.
    quotas = QuotaCache()
    emergencies = EmergencyTracker(ledger)
    on_record = await emergencies.restore()
    _log.info("emergency track: %d emergency order(s) on record", on_record)
    tokens = TokenVerifier(federation, audience=config.audience)
    # The reuse check's signatures sit beside the log, so replicas of one database share them.
    reuse = ReuseStore(config.audit_url, load_reuse_key(config.justification_key))
    node_decisions = NodeDecisionLog(ledger, federation.response_keys_in_force())
    pipeline = Pipeline(
        federation=federation,
        tokens=tokens,
        orders=OrderVerifier(federation),
        # Ids are kept as long as a query is fresh: with a longer window, a query older than
        # the default retention would otherwise be refused as unverifiable for replay.
        replay=ReplayStore(
            config.replay_url, retention=timedelta(seconds=config.freshness_seconds) + DEFAULT_SKEW
        ),
        policies=policies,
        ledger=ledger,
        router=router,
        decision_key=decision_key,
        quotas=quotas,
        emergencies=emergencies,
        reuse=reuse,
        limits=Limits(
            freshness=timedelta(seconds=config.freshness_seconds),
            max_stream_records=config.max_stream_records,
        ),
        refusal_limits=RefusalLimits(
            window=timedelta(seconds=config.refusal_window_seconds),
            per_investigator=config.refusals_per_investigator,
            per_agency=config.refusals_per_agency,
        ),
        clock=clock,
        node_decisions=node_decisions,
        watch=watch,
    )
    recovery = RecoveryLoop(
        Recovery(
            ledger=ledger,
            router=router,
            node_decisions=node_decisions,
            nodes=router.nodes,
            grace=timedelta(seconds=config.recovery_grace_seconds or 3 * config.node_deadline_seconds + 5),
            clock=clock,
        ),
        interval=config.recovery_interval_seconds,
        also=[pipeline.housekeeping],
    )
    gateway_service = GatewayService(
        pipeline, federation=federation, emergencies=emergencies, ledger=ledger, clock=clock
    )
    checkpoints = CheckpointFinder(ledger.log, Quorum.of_federation(federation))
    audit_service = AuditLogService(
        ledger,
        tokens,
        readership=Readership.of_federation(federation),
        clock=clock,
        checkpoints=checkpoints,
    )

    def prepared(new: Federation) -> Callable[[], None]:
        # Everything that can fail or take long is built first (off the event loop): the new
        # agreements' engines (bundles loaded and self-tested), the nodes' pinned certificates,
        # the verifiers, the quorum. A failure refuses the whole version; the swaps below only
        # replace references.
        new_policies = gateway_policies(new, config, previous=pipeline.policies)
        routes = routes_of(new, node_credentials)
        new_tokens = TokenVerifier(new, audience=config.audience)
        new_orders = OrderVerifier(new)
        quorum = Quorum.of_federation(new)
        readership = Readership.of_federation(new)
        response_keys = new.response_keys_in_force(clock)
        witnesses = witnessing.prepare(new)

        def reloaded() -> None:
            # Who may query and sign (investigators, issuers, authorities, legal officers), the
            # agreements, the nodes (where they listen, their response keys), the witnesses' keys
            # and policy and the log's key history follow the file at once; fresh verifiers drop
            # what the old ones cached. The router first: the witnessing loop asks its nodes.
            router.use_endpoints(routes)
            ledger.log.use_trust(new.gateway.log.keys, quorum)
            node_decisions.use_keys(response_keys)
            pipeline.use_federation(new, new_tokens, new_orders, new_policies)
            gateway_service.use_federation(new)
            audit_service.use_federation(new_tokens, readership)
            checkpoints.use_quorum(quorum)
            witnessing.use_federation(new, router, witnesses)
            warn_if_own_key_ends(
                _log,
                who="gateway",
                what="decision",
                field="keys.decision_key",
                key=decision_key.verifying_key,
                history=new.gateway.decision_keys,
                now=clock(),
            )

        return reloaded

    def register(server: object) -> None:
        pb_grpc.add_GatewayServicer_to_server(gateway_service, server)
        pb_grpc.add_AuditLogServicer_to_server(audit_service, server)

    handle = await start_server(
        listen=config.listen,
        register=register,
        service_names=SERVICES,
        credentials=server_tls.credentials(),
        max_message_bytes=config.max_message_bytes,
        health_listen=config.health_listen,
        idle_timeout=config.idle_timeout_seconds,
        handshake_timeout=config.handshake_timeout_seconds,
    )
    handle.on_stop.append(
        _start_housekeeping(pipeline, every=min(_HOUSEKEEPING_SECONDS, config.refusal_window_seconds))
    )
    # Over one PostgreSQL database, the replica holding the leader lock witnesses and prunes.
    leadership = Leadership(config.audit_url, interval=config.leader_interval_seconds)
    await asyncio.to_thread(leadership.try_lead)
    leadership.start()
    witnessing = witnessing_for(
        federation,
        ledger,
        router,
        interval=config.witness_interval_seconds,
        client=node_credentials,
        leads=lambda: leadership.leading,
    )
    if config.prune_interval_seconds > 0:
        pruning = Pruning(
            ledger.log.store,
            leadership,
            period=timedelta(days=config.retention_days),
            interval=config.prune_interval_seconds,
            hold_orders=config.hold_orders,
            clock=clock,
        )
        pruning.start()
        handle.on_stop.append(pruning.stop)
    if start_witnessing:
        witnessing.start(handle.health)
        recovery.start()
    handle.on_stop.append(witnessing.stop)
    handle.on_stop.append(leadership.stop)
    handle.on_stop.append(recovery.stop)
    watch.prepare_with(prepared)
    if config.federation_poll_seconds > 0:
        watch.start(config.federation_poll_seconds)
        handle.on_stop.append(
            follow_client_certificate(
                node_credentials,
                router,
                lambda: watch.current,
                every=config.federation_poll_seconds,
                witnesses=witnessing.independent,
            )
        )
    handle.on_stop.append(watch.stop)
    handle.on_stop.append(router.close)
    handle.on_stop.append(ledger.close)
    handle.on_stop.append(reuse.close)
    return RunningGateway(handle, ledger, router, witnessing, pipeline, recovery)


def gateway_policies(
    federation: Federation, config: GatewayConfig, *, previous: ByAgreement[PolicyEngine] | None = None
) -> ByAgreement[PolicyEngine]:
    """An engine for every agreement's gateway bundle, found by digest (fail closed); with
    ``previous`` (the set in use), its engines are used again for the digests it shares."""
    return load_policies(
        federation,
        store=config.bundle_store,
        configured=config.policy_bundle,
        digest_of=lambda agreement: agreement.bundle_digest,
        build=PolicyEngine,
        what="gateway",
        previous=previous,
    )


def _start_housekeeping(pipeline: Pipeline, *, every: float) -> Callable[[], Awaitable[None]]:
    """Run the pipeline's housekeeping every ``every`` seconds; returns the hook that stops it
    (after a last pass that also logs the current rate-limit window)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await pipeline.housekeeping()
            except Exception:  # the next pass tries again; the operator must see it
                _log.exception("gateway housekeeping failed")

    task = asyncio.create_task(loop(), name="gateway-housekeeping")

    async def stop() -> None:
        await cancel_and_wait(task)
        try:
            await pipeline.housekeeping(final=True)
        except Exception:
            _log.exception("gateway housekeeping failed at shutdown")

    return stop
