"""``comity init``: write a complete federation of any number of countries to a folder.

For each country it makes a certificate authority, the node's TLS server certificate, the
node's response and witness keys, one agency with a token issuer (key and JWKS), one
registered investigator, one legal officer and one judicial authority. Who those are comes
from ``data/members.toml`` for the countries it lists, and from the country code for any
other. For the gateway it makes a CA, a server certificate (investigators connect to it), a
client certificate (nodes accept only it), the decision key and the log's checkpoint key.
Then it writes ``federation.toml`` (format 2, with the agreements it is given) pinning all
of it, and returns a :class:`FederationLayout` naming every file.

Everything is for loopback use (demos, tests); private keys are written unencrypted with
mode 0600 unless a passphrase is given.
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from comity.core.agreements import Agreement
from comity.core.errors import ConfigError
from comity.core.federation_toml import COUNTRY
from comity.core.issuer import IssuerPrivateKey, jwks_document, mint_token
from comity.core.keys import SigningKey
from comity.core.pki import CertificateAuthority, IssuedCertificate, write_private_key

__all__ = [
    "DEFAULT_AUDIENCE",
    "VALIDITY",
    "AgencyFiles",
    "FederationLayout",
    "GatewayFiles",
    "MemberEntry",
    "NodeFiles",
    "agreement_toml",
    "federation_key_id",
    "init_federation",
    "member_ids",
    "mint_token",
    "toml_instant",
    "write_issuer_key",
    "write_jwks",
    "write_member",
]

DEFAULT_AUDIENCE = "comity-gateway"
_MEMBERS = Path(__file__).resolve().parent / "data" / "members.toml"
VALIDITY = timedelta(days=365)
"""How long a federation file written here is valid (components refuse an expired one)."""


@dataclass(frozen=True)
class _CountryPlan:
    country: str
    agency: str
    agency_name: str
    node_id: str
    issuer: str
    issuer_curve: str  # "Ed25519" or "P-256": both JWT algorithms are exercised across members
    investigator: str
    authority: str
    authority_name: str
    judge: str
    legal_officer: str


def _plan(country: str, index: int, known: Mapping[str, Mapping[str, str]]) -> _CountryPlan:
    """Who takes part for ``country``: from the members data file, or names made from its code."""
    cc = country.lower()
    m = known.get(country, {})
    agency = m.get("agency", f"{cc}.police")
    return _CountryPlan(
        country=country,
        agency=agency,
        agency_name=m.get("name", f"{country} police agency"),
        node_id=f"{cc}-node",
        issuer=m.get("issuer", f"https://id.{cc}.example"),
        issuer_curve=m.get("issuer_curve", ("Ed25519", "P-256")[index % 2]),
        investigator=m.get("investigator", f"{agency}/investigator-1"),
        authority=m.get("authority", f"{cc}.court"),
        authority_name=m.get("authority_name", f"{country} court"),
        judge=m.get("judge", f"Judge of the {country} court"),
        legal_officer=m.get("legal_officer", f"{agency}/legal-1"),
    )


def _known_members() -> dict[str, dict[str, str]]:
    with _MEMBERS.open("rb") as f:
        return {m["country"]: m for m in tomllib.load(f)["member"]}


@dataclass(frozen=True)
class NodeFiles:
    """One data node's files. Key ids: the node id for both Ed25519 keys."""

    node_id: str
    agency: str
    country: str
    endpoint: str
    port: int
    tls_cert: Path
    tls_key: Path
    ca_cert: Path
    ca_key: Path
    response_key: Path
    witness_key: Path


@dataclass(frozen=True)
class AgencyFiles:
    """One agency's files: its token issuer, investigator and authority (key id = their id)."""

    agency: str
    country: str
    issuer: str
    audience: str
    issuer_key: Path
    jwks: Path
    investigator: str
    investigator_key: Path
    authority: str
    authority_key: Path
    legal_officer: str
    judge: str = ""
    """Who signs the authority's orders, as a demo order names them."""
    federation_key: Path | None = None
    """The agency's key for signing releases of the federation file (key id: :func:`federation_key_id`)."""


@dataclass(frozen=True)
class GatewayFiles:
    """The gateway's files. Key ids: the gateway id (decision key), the log origin (log key)."""

    gateway_id: str
    endpoint: str
    port: int
    tls_cert: Path
    tls_key: Path
    client_cert: Path
    client_key: Path
    ca_cert: Path
    ca_key: Path
    decision_key: Path
    log_key: Path
    log_origin: str
    justification_key: Path
    """The secret of the justification reuse check (hex); never published."""


@dataclass(frozen=True)
class FederationLayout:
    """Every file ``init_federation`` wrote."""

    directory: Path
    federation_file: Path
    name: str
    gateway: GatewayFiles
    nodes: dict[str, NodeFiles]
    agencies: dict[str, AgencyFiles]
    agreements: tuple[Agreement, ...] = ()


# What the federation file publishes about each written file: a public key's text form, or a
# certificate's fingerprint, by path. Kept in memory so nothing is read back from disk.
_Published = dict[Path, str]


def _save_key(key: SigningKey, path: Path, passphrase: bytes | None, published: _Published) -> None:
    key.save(path, passphrase=passphrase)
    published[path] = key.verifying_key.to_text()


def _save_secret(path: Path) -> None:
    """32 random bytes as hex, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32) + "\n")


def _save_cert(
    cert: IssuedCertificate, cert_path: Path, key_path: Path, passphrase: bytes | None, published: _Published
) -> None:
    cert.save(cert_path, key_path, passphrase=passphrase)
    published[cert_path] = cert.fingerprint


def _issuer_key(curve: str) -> IssuerPrivateKey:
    return Ed25519PrivateKey.generate() if curve == "Ed25519" else ec.generate_private_key(ec.SECP256R1())


def init_federation(
    directory: Path,
    *,
    gateway_port: int,
    countries: Mapping[str, int],
    agreements: Sequence[Agreement] = (),
    host: str = "127.0.0.1",
    name: str = "federation",
    passphrase: bytes | None = None,
    now: datetime | None = None,
    format: int = 2,
    signing: bool = False,
) -> FederationLayout:
    """Write a federation of ``countries`` (country code → its node's port, in order) into ``directory``.

    Each country gets one agency and one node, ``<cc>-node``. ``agreements`` go into the file
    as they are (the loader checks them). ``format=1`` writes the older single-key shape, with
    no agreements (still read by every component). ``signing`` gives each agency a federation
    key and writes a ``[signing]`` role of all of them with a majority threshold, so that a
    next version can be trusted by their signatures (``comity federation sign``). Refuses to
    overwrite an existing ``federation.toml``, so an operator's real keys are never replaced
    by accident.
    """
    now = now or datetime.now(UTC)
    if len(countries) < 2:
        raise ConfigError("a federation needs at least two countries", field="countries")
    for country in countries:
        if not COUNTRY.match(country):
            raise ConfigError(
                f"{country!r} is not a country code (two capital letters, ISO 3166-1 alpha-2)",
                field="countries",
            )
    if format == 1 and (agreements or signing):
        raise ConfigError("a format-1 federation file holds no agreements or signing role", field="format")
    federation_file = directory / "federation.toml"
    if federation_file.exists():
        raise ConfigError(f"{federation_file} already exists", hint="choose an empty folder")
    directory.mkdir(parents=True, exist_ok=True)
    published: _Published = {}
    gateway = _write_gateway(directory, host, gateway_port, name, passphrase, now, published)
    nodes: dict[str, NodeFiles] = {}
    agencies: dict[str, AgencyFiles] = {}
    known = _known_members()
    plans = [_plan(country, i, known) for i, country in enumerate(countries)]
    for plan in plans:
        port = countries[plan.country]
        nodes[plan.node_id] = _write_node(directory, plan, host, port, passphrase, now, published)
        agencies[plan.agency] = _write_agency(directory, plan, passphrase, published, signing=signing)
    layout = FederationLayout(
        directory, federation_file, name, gateway, nodes, agencies, agreements=tuple(agreements)
    )
    header = [] if format == 1 else ["format = 2", "version = 1", f"expires = {toml_instant(now + VALIDITY)}"]
    if signing:
        keys = [a.federation_key for a in agencies.values() if a.federation_key is not None]
        header += signing_toml(len(keys) // 2 + 1, [published[k] for k in keys], list(agencies))
    text = _federation_toml(layout, plans, published, header=header, format=format)
    federation_file.write_text(text, encoding="utf-8")
    return layout


def _write_gateway(
    directory: Path,
    host: str,
    port: int,
    name: str,
    passphrase: bytes | None,
    now: datetime,
    published: _Published,
) -> GatewayFiles:
    pki = directory / "pki" / "gateway"
    ca = CertificateAuthority.create("Comity gateway CA", now=now)
    ca.issued.save(pki / "ca.crt", pki / "ca.key", passphrase=passphrase)
    server = ca.issue_server("gateway", names=_names(host), now=now)
    _save_cert(server, pki / "server.crt", pki / "server.key", passphrase, published)
    client = ca.issue_client("gateway", now=now)
    _save_cert(client, pki / "client.crt", pki / "client.key", passphrase, published)
    keys = directory / "keys" / "gateway"
    origin = f"comity.example/{name}"
    _save_key(SigningKey.generate("gateway"), keys / "decision.key", passphrase, published)
    _save_key(SigningKey.generate(origin), keys / "log.key", passphrase, published)
    _save_secret(keys / "justification.key")
    return GatewayFiles(
        gateway_id="gateway",
        endpoint=f"{_host_for_endpoint(host)}:{port}",
        port=port,
        tls_cert=pki / "server.crt",
        tls_key=pki / "server.key",
        client_cert=pki / "client.crt",
        client_key=pki / "client.key",
        ca_cert=pki / "ca.crt",
        ca_key=pki / "ca.key",
        decision_key=keys / "decision.key",
        log_key=keys / "log.key",
        log_origin=origin,
        justification_key=keys / "justification.key",
    )


def _write_node(
    directory: Path,
    plan: _CountryPlan,
    host: str,
    port: int,
    passphrase: bytes | None,
    now: datetime,
    published: _Published,
) -> NodeFiles:
    pki = directory / "pki" / plan.country.lower()
    ca = CertificateAuthority.create(
        f"Comity {plan.country} certificate authority", country=plan.country, now=now
    )
    ca.issued.save(pki / "ca.crt", pki / "ca.key", passphrase=passphrase)
    cert: IssuedCertificate = ca.issue_server(plan.node_id, names=_names(host), now=now)
    _save_cert(cert, pki / f"{plan.node_id}.crt", pki / f"{plan.node_id}.key", passphrase, published)
    keys = directory / "keys" / plan.node_id
    _save_key(SigningKey.generate(plan.node_id), keys / "response.key", passphrase, published)
    _save_key(SigningKey.generate(plan.node_id), keys / "witness.key", passphrase, published)
    return NodeFiles(
        node_id=plan.node_id,
        agency=plan.agency,
        country=plan.country,
        endpoint=f"{_host_for_endpoint(host)}:{port}",
        port=port,
        tls_cert=pki / f"{plan.node_id}.crt",
        tls_key=pki / f"{plan.node_id}.key",
        ca_cert=pki / "ca.crt",
        ca_key=pki / "ca.key",
        response_key=keys / "response.key",
        witness_key=keys / "witness.key",
    )


@dataclass(frozen=True)
class MemberEntry:
    """One member's files, and its entry and federation key as lines of the federation file."""

    node: NodeFiles
    agency: AgencyFiles
    lines: list[str]


def member_ids(country: str, index: int) -> tuple[str, str]:
    """The agency id and node id :func:`write_member` gives ``country`` (the ``index``-th member)."""
    plan = _plan(country, index, _known_members())
    return plan.agency, plan.node_id


def write_member(
    directory: Path,
    country: str,
    *,
    index: int,
    host: str,
    port: int,
    passphrase: bytes | None,
    now: datetime,
) -> MemberEntry:
    """Write the files of ``country`` as the ``index``-th member (as :func:`init_federation` does for
    each), with a federation key; return them with the member's ``[[members]]`` entry and its
    ``[[signing.keys]]`` line."""
    plan = _plan(country, index, _known_members())
    published: _Published = {}
    node = _write_node(directory, plan, host, port, passphrase, now, published)
    agency = _write_agency(directory, plan, passphrase, published, signing=True)
    assert agency.federation_key is not None  # written with signing=True
    lines = _member_toml(plan, agency, node, directory, published, 2)
    return MemberEntry(node, agency, lines + signing_key_toml(plan.agency, published[agency.federation_key]))


def federation_key_id(agency: str) -> str:
    """The id an agency's federation key is listed under in ``[signing]``."""
    return f"{agency}/federation"


def _write_agency(
    directory: Path,
    plan: _CountryPlan,
    passphrase: bytes | None,
    published: _Published,
    *,
    signing: bool = False,
) -> AgencyFiles:
    keys = directory / "keys" / plan.agency
    issuer_key = _issuer_key(plan.issuer_curve)
    write_issuer_key(issuer_key, keys / "issuer.key", passphrase)
    jwks = write_jwks(issuer_key, directory / "jwks" / f"{plan.agency}.json")
    _save_key(SigningKey.generate(plan.investigator), keys / "investigator.key", passphrase, published)
    _save_key(SigningKey.generate(plan.authority), keys / "authority.key", passphrase, published)
    federation_key = keys / "federation.key" if signing else None
    if federation_key is not None:
        _save_key(SigningKey.generate(federation_key_id(plan.agency)), federation_key, passphrase, published)
    return AgencyFiles(
        agency=plan.agency,
        country=plan.country,
        issuer=plan.issuer,
        audience=DEFAULT_AUDIENCE,
        issuer_key=keys / "issuer.key",
        jwks=jwks,
        investigator=plan.investigator,
        investigator_key=keys / "investigator.key",
        authority=plan.authority,
        authority_key=keys / "authority.key",
        legal_officer=plan.legal_officer,
        judge=plan.judge,
        federation_key=federation_key,
    )


def write_jwks(key: IssuerPrivateKey, path: Path) -> Path:
    """Write the public key set (JWKS) of an identity provider's signing key; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jwks_document(key.public_key()), indent=2) + "\n", encoding="utf-8")
    return path


def write_issuer_key(key: IssuerPrivateKey, path: Path, passphrase: bytes | None) -> None:
    """Write an issuer key (Ed25519 or P-256) as PEM with mode 0600."""
    if isinstance(key, Ed25519PrivateKey):
        SigningKey("issuer", key).save(path, passphrase=passphrase)
    else:
        write_private_key(key, path, passphrase=passphrase)


def _names(host: str) -> list[str]:
    return list(dict.fromkeys([host, "127.0.0.1", "localhost"]))


def _host_for_endpoint(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# ---------------------------------------------------------------------- the federation file


def _s(value: str) -> str:
    # JSON string syntax with ASCII escapes is valid TOML basic-string syntax.
    return json.dumps(value, ensure_ascii=True)


def _rel(path: Path, base: Path) -> str:
    return _s(path.relative_to(base).as_posix())


def toml_instant(when: datetime) -> str:
    """``when`` as a TOML offset date-time in UTC, to the second (``2026-01-01T00:00:00Z``)."""
    return when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _federation_toml(
    layout: FederationLayout,
    plans: Sequence[_CountryPlan],
    published: _Published,
    *,
    header: list[str],
    format: int,
) -> str:
    lines = [
        "# The federation: every component loads this file. Generated by `comity init`.",
        f"name = {_s(layout.name)}",
        *header,
        *_gateway_toml(layout.gateway, layout.directory, published, format),
    ]
    for plan in plans:
        agency, node = layout.agencies[plan.agency], layout.nodes[plan.node_id]
        lines += _member_toml(plan, agency, node, layout.directory, published, format)
    for agreement in layout.agreements:
        lines += agreement_toml(agreement)
    return "\n".join(lines) + "\n"


def signing_toml(threshold: int, keys: Sequence[str], agencies: Sequence[str]) -> list[str]:
    """The ``[signing]`` role: ``threshold`` of the agencies' federation keys (public key texts)."""
    lines = ["", "[signing]", f"threshold = {threshold}"]
    for agency, key in zip(agencies, keys, strict=True):
        lines += signing_key_toml(agency, key)
    return lines


def signing_key_toml(agency: str, key: str) -> list[str]:
    """One ``[[signing.keys]]`` entry: the agency's federation key."""
    return ["", "[[signing.keys]]", f"id = {_s(federation_key_id(agency))}", f"key = {_s(key)}"]


def _gateway_toml(g: GatewayFiles, d: Path, published: _Published, format: int) -> list[str]:
    lines = [
        "",
        "[gateway]",
        f"id = {_s(g.gateway_id)}",
        f"endpoint = {_s(g.endpoint)}",
        f"tls_cert = {_rel(g.tls_cert, d)}",
        f"tls_cert_sha256 = {_s(published[g.tls_cert])}",
        f"client_cert = {_rel(g.client_cert, d)}",
        f"client_cert_sha256 = {_s(published[g.client_cert])}",
        f"ca_cert = {_rel(g.ca_cert, d)}",
    ]
    if format == 1:
        return [
            *lines,
            f"decision_key = {_s(published[g.decision_key])}",
            "",
            "[gateway.log]",
            f"origin = {_s(g.log_origin)}",
            f"key = {_s(published[g.log_key])}",
        ]
    return [
        *lines,
        "",
        "[[gateway.decision_keys]]",
        f"key = {_s(published[g.decision_key])}",
        "",
        "[gateway.log]",
        f"origin = {_s(g.log_origin)}",
        "",
        "[[gateway.log.keys]]",
        f"key = {_s(published[g.log_key])}",
    ]


def _member_toml(
    plan: _CountryPlan, a: AgencyFiles, n: NodeFiles, d: Path, published: _Published, format: int
) -> list[str]:
    keys = (
        [
            f"response_key = {_s(published[n.response_key])}",
            f"witness_key = {_s(published[n.witness_key])}",
        ]
        if format == 1
        else [
            "",
            "[[members.nodes.response_keys]]",
            f"key = {_s(published[n.response_key])}",
            "",
            "[[members.nodes.witness_keys]]",
            f"key = {_s(published[n.witness_key])}",
        ]
    )
    return [
        "",
        "[[members]]",
        f"agency = {_s(plan.agency)}",
        f"country = {_s(plan.country)}",
        f"name = {_s(plan.agency_name)}",
        "",
        "[[members.issuers]]",
        f"issuer = {_s(a.issuer)}",
        f"audience = {_s(a.audience)}",
        f"jwks_file = {_rel(a.jwks, d)}",
        "",
        "[[members.authorities]]",
        f"id = {_s(a.authority)}",
        f"name = {_s(plan.authority_name)}",
        'kind = "judicial"',
        f"key = {_s(published[a.authority_key])}",
        "",
        "[[members.investigators]]",
        f"id = {_s(a.investigator)}",
        f"key = {_s(published[a.investigator_key])}",
        "",
        "[[members.legal_officers]]",
        f"id = {_s(a.legal_officer)}",
        "",
        "[[members.nodes]]",
        f"id = {_s(n.node_id)}",
        f"endpoint = {_s(n.endpoint)}",
        f"tls_cert = {_rel(n.tls_cert, d)}",
        f"tls_cert_sha256 = {_s(published[n.tls_cert])}",
        *keys,
    ]


def agreement_toml(agreement: Agreement) -> list[str]:
    """The ``[[agreements]]`` entry of ``agreement``, as lines of the federation file."""
    until = (
        [f"effective_until = {toml_instant(agreement.effective_until)}"]
        if agreement.effective_until is not None
        else []
    )
    return [
        "",
        "[[agreements]]",
        f"id = {_s(agreement.id)}",
        f"parties = [{', '.join(_s(p) for p in agreement.parties)}]",
        f"bundle_digest = {_s(agreement.bundle_digest)}",
        f"effective_from = {toml_instant(agreement.effective_from)}",
        *until,
        "[agreements.inbound]",
        *(f"{country} = {_s(digest)}" for country, digest in (agreement.inbound or {}).items()),
    ]
