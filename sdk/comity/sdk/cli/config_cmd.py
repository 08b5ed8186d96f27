"""``comity config check FILE``: validate a configuration file and explain every setting.

The file's tables tell what it configures: ``[investigator]`` an investigator's profile,
``[node]`` a data node, ``[gateway]`` with ``[audit]`` the gateway, ``[[members]]`` the
federation file. Each is read by the same function the component uses at start-up, so a file
that passes here is one the component accepts; an error names the field, and the exit status
is 1. A ``[telemetry]`` table, when present, is checked as well.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.table import Table

from comity.core.configfile import load_toml
from comity.core.errors import ConfigError
from comity.sdk.cli._common import errors_exit, stdout

__all__ = ["ConfigReport", "Setting", "check", "config_app", "explain_config"]

config_app = typer.Typer(help="Check configuration files.", no_args_is_help=True)


@config_app.callback()
def _group() -> None:
    """Check configuration files."""
    # A callback keeps `config` a group of commands even while `check` is its only one.


Kind = Literal["gateway", "node", "profile", "federation"]


@dataclass(frozen=True)
class Setting:
    """One setting as the component will use it: its value, what it means, and any remark."""

    name: str
    value: str
    meaning: str
    note: str = ""


@dataclass(frozen=True)
class ConfigReport:
    """A valid file: what it configures and each of its settings."""

    path: Path
    kind: Kind
    settings: tuple[Setting, ...]


# (setting, attribute of the loaded config, what it means, environment variable that overrides it)
_Row = tuple[str, str, str, str]

_GATEWAY: tuple[_Row, ...] = (
    ("gateway.listen", "listen", "address:port investigators' SDKs connect to (TLS)", ""),
    ("gateway.federation", "federation", "the federation file: members, keys, nodes, pins", ""),
    ("gateway.audience", "audience", "the `aud` claim every investigator token must carry", ""),
    ("tls.cert", "tls_cert", "server certificate shown to investigators", ""),
    ("tls.key", "tls_key", "private key of that certificate", ""),
    ("tls.client_cert", "client_cert", "client certificate shown to nodes (mutual TLS)", ""),
    ("tls.client_key", "client_key", "private key of the client certificate", ""),
    ("keys.decision_key", "decision_key", "Ed25519 key signing each decision sent to a node", ""),
    ("keys.log_key", "log_key", "Ed25519 key signing the transparency log's checkpoints", ""),
    ("keys.justification_key", "justification_key", "secret keying the justification reuse check", ""),
    ("audit.url", "audit_url", "where the transparency log is stored", "COMITY_AUDIT_URL"),
    ("audit.batch_interval_ms", "batch_interval_ms", "group commit: max wait while a commit runs", ""),
    ("replay.url", "replay_url", "where query ids already seen are kept", "COMITY_REPLAY_URL"),
    ("policy.store", "bundle_store", "bundles by digest; every agreement's bundle is found there", ""),
    ("policy.bundle", "policy_bundle", "one more bundle; decides all when no agreements are listed", ""),
    ("limits.max_message_bytes", "max_message_bytes", "largest gRPC message, both ways", ""),
    ("limits.node_deadline_seconds", "node_deadline_seconds", "deadline of every call to a node", ""),
    ("limits.freshness_seconds", "freshness_seconds", "how old a signed query may be", ""),
    ("log.level", "log_level", "least severe log level written", ""),
)

_NODE: tuple[_Row, ...] = (
    ("node.id", "node_id", "this node's id in the federation file", ""),
    ("node.listen", "listen", "address:port the gateway connects to (mutual TLS)", ""),
    ("node.federation", "federation", "the federation file: members, keys, nodes, pins", ""),
    ("store.url", "store_url", "where the node's records are", "COMITY_NODE_STORE_URL"),
    ("keys.response_key", "response_key", "Ed25519 key signing every response", ""),
    ("keys.witness_key", "witness_key", "Ed25519 key cosigning the log's checkpoints", ""),
    ("tls.cert", "tls_cert", "server certificate (its fingerprint is pinned in the federation)", ""),
    ("tls.key", "tls_key", "private key of that certificate", ""),
    (
        "policy.store",
        "bundle_store",
        "bundles by digest; each agreement names this country's inbound one",
        "",
    ),
    ("policy.bundle", "policy_bundle", "one more bundle; decides all when no agreements are listed", ""),
    ("witness.state", "witness_state", "the last checkpoint this node cosigned (back it up)", ""),
    ("limits.max_records", "max_records", "records per answer, at most", ""),
    ("limits.max_message_bytes", "max_message_bytes", "largest gRPC message, both ways", ""),
    ("limits.stream_batch", "stream_batch", "records per streamed chunk", ""),
    ("log.level", "log_level", "least severe log level written", ""),
)

_PROFILE: tuple[_Row, ...] = (
    ("investigator.id", "investigator", "who you are, as the federation registers you", ""),
    ("investigator.agency", "agency", "your agency", ""),
    ("investigator.key", "key_path", "your Ed25519 key; it signs every query", ""),
    ("investigator.token_file", "token_file", "file holding your bearer token", "COMITY_TOKEN"),
    ("gateway.address", "address", "the gateway's host:port", ""),
    ("gateway.ca", "ca", "the CA that issued the gateway's certificate", ""),
    ("gateway.federation", "federation", "the federation file: whose node keys sign answers", ""),
    ("gateway.replica_addresses", "replica_addresses", "further gateway replicas, tried in order", ""),
    ("gateway.timeout_seconds", "timeout", "deadline of each query, resubmissions included", ""),
    ("gateway.resubmissions", "resubmissions", "at most this many further attempts, other replicas", ""),
    ("gateway.federation_state", "federation_state", "the federation version trusted, kept between runs", ""),
    ("gateway.federation_sha256", "federation_sha256", "SHA-256 of the federation version to trust", ""),
)

_TELEMETRY: tuple[_Row, ...] = (
    ("telemetry.service_name", "service_name", "the name traces and metrics carry", ""),
    ("telemetry.exporter", "exporter", "none, console (stdout) or otlp (a collector)", ""),
    ("telemetry.endpoint", "endpoint", "the OTLP collector's address", ""),
    ("telemetry.insecure", "insecure", "plaintext to the collector (same host or pod network only)", ""),
    ("telemetry.sample_ratio", "sample_ratio", "share of new traces kept (0 to 1)", ""),
    ("telemetry.metric_interval_seconds", "metric_interval_seconds", "how often metrics are sent", ""),
    ("telemetry.log_level", "log_level", "least severe log level written", ""),
    ("telemetry.log_format", "log_format", "json (one object per line) or text", ""),
)


def _detect(path: Path) -> Kind:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(path)) from None
    if "investigator" in data:
        return "profile"
    if "node" in data:
        return "node"
    if "gateway" in data and "members" in data:
        return "federation"
    if "gateway" in data:
        return "gateway"
    raise ConfigError(
        "cannot tell what this file configures",
        source=str(path),
        hint="a gateway config has [gateway] and [audit], a node config [node], "
        "a profile [investigator], a federation file [[members]]",
    )


def _shown(value: object) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value) or "(none)"
    text = str(value)
    # A database URL may carry a password: show that there is one, never what it is.
    if text.startswith("postgresql") and "@" in text:
        parts = urlsplit(text)
        if parts.password:
            host = parts.netloc.rsplit("@", 1)[1]
            text = urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
    return text


# Files the component creates itself; their absence before the first start is normal.
_CREATED = frozenset({"witness.state"})


def _note(name: str, value: object, env: str) -> str:
    notes = []
    if env:
        notes.append(f"from {env}" if os.environ.get(env) else f"{env} overrides it")
    if isinstance(value, Path) and name not in _CREATED and not value.exists():
        notes.append("file not found on this machine")
    return "; ".join(notes)


def _settings(config: Any, rows: Sequence[_Row]) -> list[Setting]:
    out = []
    for name, attribute, meaning, env in rows:
        if hasattr(config, attribute):
            value = getattr(config, attribute)
            out.append(Setting(name, _shown(value), meaning, _note(name, value, env)))
    return out


def _telemetry(path: Path, loaded: Any, service: str) -> list[Setting]:
    from comity.core.telemetry import TelemetryConfig

    telemetry = getattr(loaded, "telemetry", None)
    if not isinstance(telemetry, TelemetryConfig):
        root = load_toml(path)
        if not root.has("telemetry"):
            return []
        telemetry = TelemetryConfig.from_section(root.table("telemetry"), service_name=service)
    return _settings(telemetry, _TELEMETRY)


def _federation_settings(path: Path) -> list[Setting]:
    from comity.core.federation import Federation

    federation = Federation.load(path)
    rows = [
        Setting("name", federation.name, "the federation's name"),
        Setting("gateway.id", federation.gateway.id, "the gateway's id; its key signs decisions"),
        Setting("gateway.endpoint", federation.gateway.endpoint, "where investigators connect"),
        Setting("gateway.log.origin", federation.gateway.log.origin, "the transparency log's name"),
    ]
    for member in federation.members:
        nodes = ", ".join(f"{n.id} at {n.endpoint}" for n in member.nodes) or "none"
        rows.append(
            Setting(
                f"members[{member.agency}]",
                f"{member.country}: {len(member.investigators)} investigator(s), "
                f"{len(member.authorities)} authorit(ies), nodes {nodes}",
                member.name,
            )
        )
    return rows


def _bundle(name_or_path: str) -> list[Setting]:
    # The component refuses to start on a bundle whose own tests fail, so the check must too.
    from comity.policy.select import load_bundle

    if not name_or_path:
        return [
            Setting(
                "policy bundle",
                "none configured",
                "each agreement's bundle is found by its digest (comity gateway|node check loads them)",
            )
        ]
    bundle = load_bundle(name_or_path)
    return [
        Setting(
            "policy bundle",
            f"{bundle.name} {bundle.version} ({bundle.digest})",
            "loaded, validated against its schema, and its own tests pass",
        )
    ]


def explain_config(path: Path) -> ConfigReport:
    """Validate ``path`` with its component's own reader; raises ConfigError naming the field."""
    kind = _detect(path)
    settings: list[Setting]
    if kind == "gateway":
        from comity.gateway.config import load_gateway_config

        loaded: Any = load_gateway_config(path)
        settings = _settings(loaded, _GATEWAY) + _telemetry(path, loaded, "comity-gateway")
        settings += _bundle(loaded.policy_bundle)
    elif kind == "node":
        from comity.nodes.config import load_node_config

        loaded = load_node_config(path)
        settings = _settings(loaded, _NODE) + _telemetry(path, loaded, "comity-node")
        settings += _bundle(loaded.policy_bundle)
    elif kind == "profile":
        from comity.sdk.profile import load_profile

        settings = _settings(load_profile(path), _PROFILE)
    else:
        settings = _federation_settings(path)
    return ConfigReport(path, kind, tuple(settings))


_TITLES = {
    "gateway": "gateway configuration",
    "node": "data node configuration",
    "profile": "investigator profile",
    "federation": "federation file",
}


@config_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="A gateway or node config, a profile, or a federation file.")],
) -> None:
    """Validate FILE as its component reads it, and explain each setting; exit 1 on an error."""
    with errors_exit():
        report = explain_config(file)
    stdout.print(f"[green]✓[/] {file} is a valid {_TITLES[report.kind]}")
    table = Table(show_header=True, header_style="bold")
    for column in ("setting", "value", "meaning"):
        table.add_column(column, overflow="fold")
    for s in report.settings:
        meaning = f"{s.meaning} [yellow]({s.note})[/]" if s.note else s.meaning
        table.add_row(s.name, s.value, meaning)
    stdout.print(table)
