"""A data node's configuration file (TOML), read once and validated at start-up.

Example::

    [node]
    id = "ca-node"                    # this node's id in the federation file
    listen = "127.0.0.1:50061"
    health_listen = "0.0.0.0:8081"    # optional: plaintext gRPC health only, for probes
    federation = "federation.toml"

    [store]
    url = "sqlite:///ca-node.db"      # or postgresql://user@host/db
    outbox_url = ""                   # optional: where the signed-decision outbox lives (default: url)
    schema = "record-types.toml"      # optional: the record types, in place of the built-in ones
                                      # (comity.nodes.schemafile describes the file)

    # Or serve an agency's own PostgreSQL tables or views in place (see comity.nodes.mapped):
    # [[store.tables]]
    # table = "agency.subscribers"
    # record_type = "subscriber_account"
    # record_id = "id"
    # observed_at = "opened"
    # fields = { email = "mail", full_name = "holder" }

    [keys]                            # Ed25519 keys; passphrase from COMITY_KEY_PASSPHRASE
    response_key = "keys/ca-node.pem"
    witness_key = "keys/ca-node-witness.pem"

    [tls]
    cert = "pki/ca-node.crt"
    key = "pki/ca-node.key"

    [policy]                          # each agreement names this country's inbound bundle by digest
    store = "bundles"                 # optional: bundles by digest (beside the shipped ones)
    bundle = "my-inbound"             # optional: one more bundle (name or folder) found by digest;
                                      # required, and deciding every query, when the federation
                                      # file lists no agreements

    [witness]
    state = "ca-node-witness.db"      # the last checkpoint this node accepted

    [limits]
    max_records = 500
    max_message_bytes = 4194304
    stream_batch = 256
    freshness_seconds = 300           # a forwarded query (and the gateway's decision) is refused
                                      # when older than this by the node's clock; keep it equal to
                                      # the gateway's

    [private]                         # optional: private hit checks (docs/security.md)
    rotation_hours = 24               # the OPRF key's epoch
    refresh_seconds = 60              # how often records loaded since are added to the filters
    inverse_fp_rate = 1000000000      # false-positive rate 1 / this, per selector and segment
    per_order_per_day = 64            # selectors one order may test a day
    per_agency_per_day = 1000
    [telemetry]                       # see comity.core.telemetry.TelemetryConfig
    exporter = "none"
    log_level = "INFO"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from comity.core.configfile import database_url, load_toml
from comity.core.grpcopts import DEFAULT_MAX_MESSAGE_BYTES
from comity.core.telemetry import TelemetryConfig
from comity.nodes.lookup import RecordSource
from comity.nodes.mapped import MappedSource, TableMapping
from comity.nodes.schema import Schema, default_schema
from comity.nodes.schemafile import load_schema
from comity.nodes.store import RecordStore

__all__ = ["NodeConfig", "PrivateConfig", "load_node_config", "open_source"]


@dataclass(frozen=True)
class PrivateConfig:
    """The private hit check's settings."""

    rotation: timedelta = timedelta(hours=24)
    refresh: timedelta = timedelta(seconds=60)
    inverse_fp_rate: int = 10**9
    per_order_per_day: int = 64
    per_agency_per_day: int = 1000


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node needs to start, with paths resolved against the config file."""

    node_id: str
    listen: str
    federation: Path
    store_url: str
    response_key: Path
    witness_key: Path
    tls_cert: Path
    tls_key: Path
    witness_state: Path
    policy_bundle: str = ""
    max_records: int = 500
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    stream_batch: int = 256
    freshness_seconds: int = 300
    store_tables: tuple[TableMapping, ...] = ()
    health_listen: str = ""
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    source: Path | None = None
    outbox_url: str = ""
    #: How often the federation file is looked at for a new version (0: never while running).
    federation_poll_seconds: float = 1.0
    #: The SHA-256 the federation file must have at start-up (the first trusted version), if pinned.
    federation_sha256: str = ""
    private: PrivateConfig = field(default_factory=PrivateConfig)
    bundle_store: Path | None = None
    #: A TOML file of record types (:mod:`comity.nodes.schemafile`) in place of the built-in ones.
    schema_file: Path | None = None


def node_schema(config: NodeConfig) -> Schema:
    """The record types the node holds: its schema file's, or the built-in ones."""
    return load_schema(config.schema_file) if config.schema_file is not None else default_schema()


def open_source(config: NodeConfig, *, create: bool = True, schema: Schema | None = None) -> RecordSource:
    """The node's records: its own store (its tables made when ``create``), or the agency's tables.

    ``schema`` is the node's (:func:`node_schema`), read from the config when not given.
    """
    schema = schema or node_schema(config)
    if config.store_tables:
        return MappedSource(config.store_url, config.store_tables, schema=schema)
    return RecordStore(config.store_url, create=create, schema=schema)


def load_node_config(path: Path) -> NodeConfig:
    """Read and validate a node config; ConfigError names the bad field."""
    root = load_toml(path)
    node = root.table("node")
    store = root.table("store")
    keys = root.table("keys")
    tls = root.table("tls")
    policy = root.table("policy", required=False)
    witness = root.table("witness")
    limits = root.table("limits", required=False)
    private = root.table("private", required=False)
    config = NodeConfig(
        node_id=node.text("id"),
        listen=node.text("listen"),
        health_listen=node.text("health_listen", ""),
        federation=node.path("federation"),
        federation_poll_seconds=node.number("federation_poll_seconds", 1.0, minimum=0.0),
        federation_sha256=node.text("federation_sha256", ""),
        store_url=database_url(store, env="COMITY_NODE_STORE_URL"),
        store_tables=tuple(
            TableMapping.from_dict(raw, where=name) for name, raw in store.table_list("tables")
        ),
        response_key=keys.path("response_key"),
        witness_key=keys.path("witness_key"),
        tls_cert=tls.path("cert"),
        tls_key=tls.path("key"),
        policy_bundle=policy.text("bundle", ""),
        bundle_store=policy.optional_path("store"),
        witness_state=witness.path("state"),
        max_records=limits.integer("max_records", 500, minimum=1),
        max_message_bytes=limits.integer("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES, minimum=65536),
        stream_batch=limits.integer("stream_batch", 256, minimum=1),
        freshness_seconds=limits.integer("freshness_seconds", 300, minimum=1),
        telemetry=TelemetryConfig.from_section(
            root.table("telemetry", required=False), service_name="comity-node"
        ),
        source=path,
        outbox_url=store.text("outbox_url", ""),
        schema_file=store.optional_path("schema"),
        private=PrivateConfig(
            rotation=timedelta(hours=private.integer("rotation_hours", 24, minimum=1)),
            refresh=timedelta(seconds=private.integer("refresh_seconds", 60, minimum=1)),
            inverse_fp_rate=private.integer("inverse_fp_rate", 10**9, minimum=2),
            per_order_per_day=private.integer("per_order_per_day", 64, minimum=1),
            per_agency_per_day=private.integer("per_agency_per_day", 1000, minimum=1),
        ),
    )
    for section in (node, store, keys, tls, policy, witness, limits, private, root):
        section.done()
    return config
