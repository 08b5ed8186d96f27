"""Writing a complete demo federation: keys, certificates, records, configs, profiles, orders."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from comity.core.bootstrap import DEFAULT_AUDIENCE, FederationLayout, init_federation, mint_token
from comity.core.issuer import load_issuer_key
from comity.core.keys import SigningKey
from comity.core.orders import sign_order
from comity.core.target import target_facts
from comity.nodes.ingest import load_records
from comity.nodes.schema import SelectorType
from comity.nodes.store import RecordStore
from comity.nodes.synthetic import Person, generate
from comity.policy.bundle_store import BundleStore
from comity.policy.pairing import agreements_from_bundles, extra_bundles, shipped_bundles
from comity.v1 import comity_pb2 as pb

__all__ = ["DEMO_COUNTRIES", "DemoFederation", "OrderSpec", "build_demo_federation", "free_ports"]

#: The demo's federation unless told otherwise: the first agreement, between these two.
DEMO_COUNTRIES = ("US", "CA")


def free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now (bound and released at once)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass(frozen=True)
class OrderSpec:
    """A legal order to sign for a demo query."""

    order_id: str
    agency: str  # the requesting agency; its country's authority signs
    offence_code: str
    person: Person
    selector_types: tuple[SelectorType, ...]
    categories: tuple[str, ...]
    authorisation_type: str = "judicial"
    # What the order attests about the target; empty: what the person's own records say
    # (an honest requester). Legal persons name their country of incorporation.
    nationalities: tuple[str, ...] = ()
    residences: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    target_kind: str = "natural-person"
    incorporated_in: str = ""
    emergency: bool = False  # the emergency track (imminent threat to life)


@dataclass
class DemoFederation:
    """Everything the demo wrote, by role."""

    directory: Path
    layout: FederationLayout
    node_configs: dict[str, Path]
    gateway_config: Path
    profiles: dict[str, Path]  # by agency
    subjects: dict[str, list[Person]]  # well-known subjects by node id
    audit_db: Path
    orders: dict[str, Path] = field(default_factory=dict)
    officer_tokens: dict[str, Path] = field(default_factory=dict)  # legal officers' tokens, by agency

    def sign_order(self, spec: OrderSpec, *, now: datetime) -> Path:
        """Have the requesting country's judicial authority sign ``spec``; returns the envelope file."""
        agency = self.layout.agencies[spec.agency]
        key = SigningKey.load(agency.authority_key, key_id=agency.authority)
        order = pb.LegalOrder(
            order_id=spec.order_id,
            issuing_authority=agency.authority,
            issuing_country=agency.country,
            offence_code=spec.offence_code,
            authorised_by=agency.judge,
            authorisation_type=spec.authorisation_type,
            selectors=[
                pb.Selector(type=int(t), value=spec.person.selectors[t])  # type: ignore[arg-type]
                for t in spec.selector_types
            ],
            categories=list(spec.categories),
            valid_from=_ts(now - timedelta(days=1)),
            valid_until=_ts(now + timedelta(days=30)),
            max_records=200,
            emergency=spec.emergency,
            target=target_facts(
                nationalities=spec.nationalities or (spec.person.nationality,),
                residences=spec.residences or (spec.person.residence,),
                locations=spec.locations or spec.residences or (spec.person.residence,),
                kind=spec.target_kind,
                incorporated_in=spec.incorporated_in,
                not_for_third_government=True,
            ),
        )
        path = self.directory / "orders" / f"{spec.order_id}.order"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sign_order(order, key).SerializeToString())
        self.orders[spec.order_id] = path
        return path


def _ts(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def _node_config(directory: Path, node_id: str, port: int, layout: FederationLayout) -> Path:
    files = layout.nodes[node_id]
    text = f"""# Data node {node_id} ({files.country}), written by `comity demo`.
[node]
id = "{node_id}"
listen = "127.0.0.1:{port}"
federation = "../federation.toml"

[store]
url = "sqlite:///../data/{node_id}.db"

[keys]
response_key = "../{files.response_key.relative_to(directory)}"
witness_key = "../{files.witness_key.relative_to(directory)}"

[tls]
cert = "../{files.tls_cert.relative_to(directory)}"
key = "../{files.tls_key.relative_to(directory)}"

[policy]
store = "../data/bundles"

[witness]
state = "../data/{node_id}-witness.db"

[limits]
max_records = 500
"""
    path = directory / "configs" / f"{node_id}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _gateway_config(directory: Path, layout: FederationLayout) -> Path:
    g = layout.gateway
    text = f"""# The gateway, written by `comity demo`.
[gateway]
listen = "127.0.0.1:{g.port}"
federation = "../federation.toml"
audience = "{DEFAULT_AUDIENCE}"

[tls]
cert = "../{g.tls_cert.relative_to(directory)}"
key = "../{g.tls_key.relative_to(directory)}"
client_cert = "../{g.client_cert.relative_to(directory)}"
client_key = "../{g.client_key.relative_to(directory)}"

[keys]
decision_key = "../{g.decision_key.relative_to(directory)}"
log_key = "../{g.log_key.relative_to(directory)}"
justification_key = "../{g.justification_key.relative_to(directory)}"

[audit]
url = "sqlite:///../data/audit.db"
batch_interval_ms = 2

[replay]
url = "sqlite:///../data/replay.db"

[policy]
store = "../data/bundles"
"""
    path = directory / "configs" / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _token(
    directory: Path, layout: FederationLayout, agency_id: str, subject: str, name: str, now: datetime
) -> Path:
    """Mint a token as the agency's identity provider would, into ``tokens/NAME.jwt`` (mode 0600)."""
    agency = layout.agencies[agency_id]
    token = mint_token(
        load_issuer_key(agency.issuer_key),
        issuer=agency.issuer,
        subject=subject,
        audience=agency.audience,
        ttl=timedelta(hours=8),
        now=now,
    )
    token_file = directory / "tokens" / f"{name}.jwt"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(token + "\n", encoding="utf-8")
    token_file.chmod(0o600)
    return token_file


def _profile(directory: Path, layout: FederationLayout, agency_id: str, now: datetime) -> Path:
    agency = layout.agencies[agency_id]
    _token(directory, layout, agency_id, agency.investigator, agency_id, now)
    text = f"""# Investigator profile for {agency.investigator} ({agency_id}), written by `comity demo`.
[investigator]
id = "{agency.investigator}"
agency = "{agency_id}"
key = "../{agency.investigator_key.relative_to(directory)}"
token_file = "../tokens/{agency_id}.jwt"

[gateway]
address = "{layout.gateway.endpoint}"
ca = "../{layout.gateway.ca_cert.relative_to(directory)}"
federation = "../federation.toml"
timeout_seconds = 30
"""
    path = directory / "profiles" / f"{agency_id}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def build_demo_federation(
    directory: Path,
    *,
    people: int = 150,
    seed: int = 2026,
    now: datetime | None = None,
    countries: Sequence[str] = DEMO_COUNTRIES,
    bundles: Sequence[Path] = (),
    shipped: bool = True,
) -> DemoFederation:
    """Write a complete federation of ``countries`` with synthetic records into ``directory``.

    Its agreements are made from the shipped bundles and the bundle folders in ``bundles``
    (:func:`comity.policy.pairing.agreements_from_bundles`); those are kept in the bundle store
    (``data/bundles``) by digest, where the gateway and the nodes find them. ``shipped=False``
    leaves the shipped bundles out (``bundles`` then replace them, e.g. with altered copies).
    """
    now = now or datetime.now(UTC)
    gateway_port, *node_ports = free_ports(1 + len(countries))
    extra = extra_bundles(bundles)
    agreements = agreements_from_bundles([*(shipped_bundles() if shipped else ()), *extra], countries)
    layout = init_federation(
        directory,
        gateway_port=gateway_port,
        countries=dict(zip(countries, node_ports, strict=True)),
        agreements=agreements,
        name="demo",
        now=now,
    )
    kept = BundleStore(directory / "data" / "bundles")
    for bundle in extra:
        kept.keep(bundle)
    (directory / "configs").mkdir(exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    node_configs: dict[str, Path] = {}
    subjects: dict[str, list[Person]] = {}
    ports = {files.node_id: files.port for files in layout.nodes.values()}
    for node_id, files in layout.nodes.items():
        others = [c for c in countries if c != files.country]
        data = generate(files.country, people, seed, other=others[0])
        data.write_jsonl(directory / "data" / f"{node_id}.jsonl")
        with RecordStore(directory / "data" / f"{node_id}.db") as store:
            load_records(store, data.records, region=files.country)
        subjects[node_id] = data.well_known
        node_configs[node_id] = _node_config(directory, node_id, ports[node_id], layout)
    profiles = {agency: _profile(directory, layout, agency, now) for agency in layout.agencies}
    officer_tokens = {
        agency_id: _token(directory, layout, agency_id, agency.legal_officer, f"{agency_id}-legal", now)
        for agency_id, agency in layout.agencies.items()
    }
    return DemoFederation(
        directory=directory,
        layout=layout,
        node_configs=node_configs,
        gateway_config=_gateway_config(directory, layout),
        profiles=profiles,
        subjects=subjects,
        audit_db=directory / "data" / "audit.db",
        officer_tokens=officer_tokens,
    )
