"""The gateway's configuration file (TOML), read once and validated at start-up.

Example::

    [gateway]
    listen = "127.0.0.1:50051"
    federation = "federation.toml"
    audience = "comity-gateway"          # the `aud` investigators' tokens must carry
    health_listen = "0.0.0.0:8081"      # optional: plaintext gRPC health only, for probes

    [tls]
    cert = "pki/gateway.crt"            # shown to investigators
    key = "pki/gateway.key"
    client_cert = "pki/gateway-client.crt"   # shown to nodes (mutual TLS)
    client_key = "pki/gateway-client.key"

    [keys]                               # Ed25519; passphrase from COMITY_KEY_PASSPHRASE
    decision_key = "keys/gateway-decision.pem"
    log_key = "keys/gateway-log.pem"
    justification_key = "keys/gateway-justification.key"   # secret; hex, 32+ bytes; every replica

    [audit]
    url = "sqlite:///audit.db"           # or postgresql://...
    batch_interval_ms = 5

    [replay]
    url = "sqlite:///replay.db"

    [witnessing]                         # C2SP tlog-witness: every node's witness cosigns the newest
    interval_seconds = 2                 # checkpoint this often, and as soon as entries wait

    [policy]                             # each agreement's bundle is found by its digest (federation file)
    store = "bundles"                    # optional: bundles by digest; every bundle loaded is kept here
    bundle = "my-agreement"              # optional: one more bundle (name or folder) found by digest;
                                         # required, and deciding every query, when the federation file
                                         # lists no agreements

    [limits]
    max_message_bytes = 4194304
    node_deadline_seconds = 10
    freshness_seconds = 300
    refusal_window_seconds = 60          # refusals before policy: per investigator, then per agency,
    refusals_per_investigator = 20       # in each window; past them RESOURCE_EXHAUSTED and one
    refusals_per_agency = 100            # aggregate `throttled` log entry per window
    idle_timeout_seconds = 300           # connections without calls are closed after this
    handshake_timeout_seconds = 10       # connections that do not finish TLS in this are closed
    max_stream_records = 10000           # records of one streamed answer held until it is checked

    [recovery]                           # optional: completing the trail after a crash (docs/audit.md)
    interval_seconds = 10                # how often nodes' outboxes and pending markers are swept
    grace_seconds = 0                    # a marker's age before it is ended; 0: 3 node deadlines + 5 s

    [telemetry]                          # see comity.core.telemetry.TelemetryConfig
    exporter = "otlp"                    # none | console | otlp
    endpoint = "http://collector:4317"
    sample_ratio = 0.1
    log_level = "INFO"
    log_format = "json"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from comity.core.configfile import database_url, load_toml
from comity.core.grpcopts import DEFAULT_MAX_MESSAGE_BYTES
from comity.core.telemetry import TelemetryConfig

__all__ = ["GatewayConfig", "load_gateway_config"]


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway needs to start, with paths resolved against the config file."""

    listen: str
    federation: Path
    tls_cert: Path
    tls_key: Path
    client_cert: Path
    client_key: Path
    decision_key: Path
    log_key: Path
    justification_key: Path
    """The secret key of the justification reuse check's MinHash signatures (hex, 32 bytes or more)."""
    audit_url: str
    replay_url: str
    policy_bundle: str = ""
    audience: str = "comity-gateway"
    batch_interval_ms: float = 5.0
    witness_interval_seconds: float = 2.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    node_deadline_seconds: float = 10.0
    freshness_seconds: int = 300
    refusal_window_seconds: int = 60
    refusals_per_investigator: int = 20
    refusals_per_agency: int = 100
    idle_timeout_seconds: float = 300.0
    handshake_timeout_seconds: float = 10.0
    max_stream_records: int = 10_000
    health_listen: str = ""
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    source: Path | None = None
    recovery_interval_seconds: float = 10.0
    bundle_store: Path | None = None
    recovery_grace_seconds: float = 0.0
    #: How often the federation file is looked at for a new version (0: never while running).
    federation_poll_seconds: float = 1.0
    #: The SHA-256 the federation file must have at start-up (the first trusted version), if pinned.
    federation_sha256: str = ""
    #: Several gateway processes over one database: PostgreSQL, replicated synchronously (see
    #: ``comity.gateway.replication``), unless ``allow_asynchronous_replication`` overrides it.
    replicated: bool = False
    allow_asynchronous_replication: bool = False
    #: How often a standby replica tries to take the lead, and the leader checks it still holds it.
    leader_interval_seconds: float = 2.0
    #: Retention pruning by the leading replica every so many seconds (0: never; ``comity audit prune``).
    prune_interval_seconds: float = 0.0
    retention_days: int = 730
    hold_orders: tuple[str, ...] = ()


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read and validate the gateway config; ConfigError names the bad field."""
    root = load_toml(path)
    gw = root.table("gateway")
    tls = root.table("tls")
    keys = root.table("keys")
    audit = root.table("audit")
    replay = root.table("replay")
    policy = root.table("policy", required=False)
    limits = root.table("limits", required=False)
    witnessing = root.table("witnessing", required=False)
    recovery = root.table("recovery", required=False)
    replication = root.table("replication", required=False)
    retention = root.table("retention", required=False)
    config = GatewayConfig(
        listen=gw.text("listen"),
        health_listen=gw.text("health_listen", ""),
        federation=gw.path("federation"),
        federation_poll_seconds=gw.number("federation_poll_seconds", 1.0, minimum=0.0),
        federation_sha256=gw.text("federation_sha256", ""),
        tls_cert=tls.path("cert"),
        tls_key=tls.path("key"),
        client_cert=tls.path("client_cert"),
        client_key=tls.path("client_key"),
        decision_key=keys.path("decision_key"),
        log_key=keys.path("log_key"),
        justification_key=keys.path("justification_key"),
        audit_url=database_url(audit, env="COMITY_AUDIT_URL"),
        replay_url=database_url(replay, env="COMITY_REPLAY_URL"),
        policy_bundle=policy.text("bundle", ""),
        audience=gw.text("audience", "comity-gateway"),
        batch_interval_ms=audit.number("batch_interval_ms", 5.0, minimum=0.0),
        witness_interval_seconds=witnessing.number("interval_seconds", 2.0, minimum=0.05),
        max_message_bytes=limits.integer("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES, minimum=65536),
        node_deadline_seconds=limits.number("node_deadline_seconds", 10.0, minimum=0.1),
        freshness_seconds=limits.integer("freshness_seconds", 300, minimum=1),
        refusal_window_seconds=limits.integer("refusal_window_seconds", 60, minimum=1),
        refusals_per_investigator=limits.integer("refusals_per_investigator", 20, minimum=1),
        refusals_per_agency=limits.integer("refusals_per_agency", 100, minimum=1),
        idle_timeout_seconds=limits.number("idle_timeout_seconds", 300.0, minimum=1.0),
        handshake_timeout_seconds=limits.number("handshake_timeout_seconds", 10.0, minimum=0.1),
        max_stream_records=limits.integer("max_stream_records", 10_000, minimum=1),
        telemetry=TelemetryConfig.from_section(
            root.table("telemetry", required=False), service_name="comity-gateway"
        ),
        source=path,
        bundle_store=policy.optional_path("store"),
        recovery_interval_seconds=recovery.number("interval_seconds", 10.0, minimum=0.05),
        recovery_grace_seconds=recovery.number("grace_seconds", 0.0, minimum=0.0),
        replicated=replication.flag("replicated", False),
        allow_asynchronous_replication=replication.flag("allow_asynchronous_replication", False),
        leader_interval_seconds=replication.number("leader_interval_seconds", 2.0, minimum=0.05),
        prune_interval_seconds=retention.number("prune_interval_seconds", 0.0, minimum=0.0),
        retention_days=retention.integer("days", 730, minimum=1),
        hold_orders=retention.texts("hold_orders"),
    )
    sections = (gw, tls, keys, audit, replay, policy, limits, witnessing, recovery, replication, retention)
    for section in (*sections, root):
        section.done()
    return config
