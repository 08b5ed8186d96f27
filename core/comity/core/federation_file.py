"""Reading the federation file (TOML) into :class:`~comity.core.federation.Federation`.

Two shapes are read. Format 2 (``format = 2``, see ``docs/federation.md``) lists rotating keys as
histories (``[[gateway.decision_keys]]``, ``[[gateway.log.keys]]``, ``[[members.nodes.response_keys]]``,
``[[members.nodes.witness_keys]]``), and adds ``version``, ``expires``, ``[signing]``, independent
``[[witnesses]]``, a ``[witness_policy]`` and ``[[agreements]]``. Format 1 (no ``format`` key, or
``format = 1``) is the shape below, with one key each; its keys become one-key histories and its
witness policy is every member country with all of its witnesses.

The format-1 file, in outline (paths are relative to the file's folder)::

    name = "us-ca"

    [gateway]
    id = "gateway"
    endpoint = "127.0.0.1:7443"
    replica_endpoints = ["127.0.0.1:7444"]     # optional: further processes serving the same log
    tls_cert = "pki/gateway/server.crt"        # what investigators connect to
    tls_cert_sha256 = "<hex>"                  # or ["<new>", "<old>"] while replacing it
    client_cert = "pki/gateway/client.crt"     # what the gateway shows to nodes
    client_cert_sha256 = "<hex>"
    ca_cert = "pki/gateway/ca.crt"             # optional: the CA investigators trust
    decision_key = "ed25519:<base64>"
    [gateway.log]
    origin = "comity.example/us-ca"
    key = "ed25519:<base64>"

    [[members]]
    agency = "us.fbi"
    country = "US"
    name = "Federal Bureau of Investigation"
    [[members.issuers]]
    issuer = "https://id.fbi.example"
    audience = "comity-gateway"
    jwks = '{"keys": [...]}'                   # or jwks_file = "jwks/us.fbi.json"
    [[members.authorities]]
    id = "us.court.sdny"
    name = "US District Court, S.D.N.Y."
    kind = "judicial"                          # judicial | independent | administrative
    key = "ed25519:<base64>"                   # country defaults to the member's
    [[members.investigators]]
    id = "us.fbi/agent-1"
    key = "ed25519:<base64>"
    [[members.legal_officers]]                 # may read the log's entries through the gateway
    id = "us.fbi/legal-1"
    name = "Office of the General Counsel"
    [[members.nodes]]
    id = "us-node"
    endpoint = "127.0.0.1:7101"
    tls_cert = "pki/us/us-node.crt"
    tls_cert_sha256 = "<hex>"
    response_key = "ed25519:<base64>"
    witness_key = "ed25519:<base64>"

A ``*_sha256`` pin may be an array while a certificate is being replaced: the certificate
file then holds every pinned certificate, and peers accept any of them.

Every error names the field, e.g. ``members[1].nodes[0].endpoint``.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from comity.core.errors import ConfigError
from comity.core.federation import (
    AUTHORITY_KINDS,
    Authority,
    Federation,
    GatewayIdentity,
    Investigator,
    IssuerKey,
    JwtAlgorithm,
    LegalOfficer,
    LogIdentity,
    Member,
    Node,
    SigningRole,
    TokenIssuer,
)
from comity.core.federation_agreements import parse_agreements
from comity.core.federation_toml import AGENCY, COUNTRY, FederationTable
from comity.core.federation_witnesses import parse_independent_witnesses, parse_witness_policy
from comity.core.keys import VerifyingKey

__all__ = ["parse_federation_file", "parse_federation_text"]

_FORMATS = (1, 2)
# What only a format-2 file may hold at its top level.
_FORMAT_2_ONLY = ("version", "expires", "signing", "witnesses", "witness_policy", "agreements")
# (kty, crv) → the one algorithm such a key may verify; anything else is refused at load time.
_JWK_ALGORITHMS: dict[tuple[str, str], JwtAlgorithm] = {("OKP", "Ed25519"): "EdDSA", ("EC", "P-256"): "ES256"}
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


def parse_federation_file(path: Path) -> Federation:
    """Read and validate ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read federation file: {exc.strerror}", source=str(path)) from None
    return parse_federation_text(text, base=path.resolve().parent, source=str(path), path=path)


def parse_federation_text(text: str, *, base: Path, source: str, path: Path | None = None) -> Federation:
    """Validate federation TOML ``text``; ``base`` resolves relative paths."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=source) from None
    root = FederationTable(data, source=source, base=base, prefix="")
    format = root.integer("format", 1)
    if format not in _FORMATS:
        raise root.error("format", f"must be 1 or 2 (the shapes this version reads); got {format}")
    if format == 1:
        for key in _FORMAT_2_ONLY:
            if root.has(key):
                raise root.error(key, "needs format = 2 at the top of the file (see docs/federation.md)")
    name = root.text("name")
    members = tuple(_member(t, format) for t in root.tables("members"))
    gateway = _gateway(root.sub("gateway"), format)
    _check_unique(members, source)
    if format == 1:
        root.done()
        return Federation(name=name, members=members, gateway=gateway, source=path)
    witnesses = parse_independent_witnesses(root, members)
    federation = Federation(
        name=name,
        members=members,
        gateway=gateway,
        source=path,
        format=format,
        version=root.integer("version", minimum=1),
        expires=root.instant("expires"),
        signing=_signing(root.sub("signing")) if root.has("signing") else None,
        independent_witnesses=witnesses,
        declared_witness_policy=parse_witness_policy(root, members, witnesses),
        agreements=parse_agreements(root, members),
    )
    root.done()
    return federation


def _signing(t: FederationTable) -> SigningRole:
    keys: dict[str, VerifyingKey] = {}
    for k in t.tables("keys"):
        key_id = k.identifier()
        if key_id in keys:
            raise k.error("id", f"signing key {key_id!r} is listed twice")
        key = k.verifying_key("key", key_id)
        if any(key.public_key.public_bytes_raw() == o.public_key.public_bytes_raw() for o in keys.values()):
            raise k.error("key", "the same key is already listed under another id")
        keys[key_id] = key
        k.done()
    threshold = t.integer("threshold", minimum=1)
    if threshold > len(keys):
        raise t.error("threshold", f"must be at most the {len(keys)} signing keys; got {threshold}")
    t.done()
    return SigningRole(threshold, keys)


def _member(t: FederationTable, format: int) -> Member:
    agency = t.pattern("agency", AGENCY, "an agency id like 'gb.nca' (country code, dot, name)")
    country = t.pattern("country", COUNTRY, "an ISO 3166-1 alpha-2 code like 'GB'")
    name = t.text("name", "") or agency
    issuers = tuple(_issuer(i, agency) for i in t.tables("issuers", required=False))
    authorities = tuple(_authority(a, agency, country) for a in t.tables("authorities", required=False))
    investigators = tuple(
        _investigator(i, agency, country) for i in t.tables("investigators", required=False)
    )
    nodes = tuple(_node(n, agency, country, format) for n in t.tables("nodes", required=False))
    officers = tuple(_legal_officer(o, agency, country) for o in t.tables("legal_officers", required=False))
    t.done()
    return Member(agency, country, name, issuers, authorities, investigators, nodes, officers)


def _issuer(t: FederationTable, agency: str) -> TokenIssuer:
    issuer = t.text("issuer")
    audience = t.text("audience")
    if t.has("jwks") == t.has("jwks_file"):
        raise t.error("jwks", "give exactly one of jwks (inline) or jwks_file (a path)")
    if t.has("jwks_file"):
        where = t.at("jwks_file")
        jwks_path = t.path("jwks_file")
        try:
            raw: Any = json.loads(jwks_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise t.error("jwks_file", f"cannot read {jwks_path}: {exc.strerror}") from None
        except ValueError as exc:
            raise t.error("jwks_file", f"{jwks_path} is not JSON: {exc}") from None
    else:
        where = t.at("jwks")
        raw = t.raw("jwks")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise t.error("jwks", f"is not JSON: {exc}") from None
    keys = _jwks(raw, where, t.source)
    t.done()
    return TokenIssuer(issuer=issuer, audience=audience, agency=agency, keys=keys)


def _jwks(raw: Any, where: str, source: str) -> dict[str, IssuerKey]:
    if not isinstance(raw, dict) or not isinstance(raw.get("keys"), list) or not raw["keys"]:
        raise ConfigError('a JWKS must be {"keys": [...]} with at least one key', field=where, source=source)
    keys: dict[str, IssuerKey] = {}
    for i, jwk in enumerate(raw["keys"]):
        field = f"{where}.keys[{i}]"
        key = _jwk(jwk, field, source)
        if key.kid in keys:
            raise ConfigError(f"kid {key.kid!r} appears twice", field=field, source=source)
        keys[key.kid] = key
    return keys


def _jwk(jwk: Any, field: str, source: str) -> IssuerKey:
    def bad(message: str) -> ConfigError:
        return ConfigError(message, field=field, source=source)

    if not isinstance(jwk, dict):
        raise bad("must be a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise bad("every key needs a 'kid' (tokens name their key by it)")
    algorithm = _JWK_ALGORITHMS.get((str(jwk.get("kty")), str(jwk.get("crv"))))
    if algorithm is None:
        raise bad("only Ed25519 (kty OKP) and P-256 (kty EC) keys are allowed")
    if jwk.get("alg", algorithm) != algorithm:
        raise bad(f"a {jwk['kty']} {jwk['crv']} key verifies {algorithm} only, not {jwk['alg']!r}")
    if jwk.get("use", "sig") != "sig":
        raise bad("a token-verifying key must have use 'sig'")
    if any(m in jwk for m in _PRIVATE_JWK_MEMBERS):
        raise bad("holds private key material: publish only the public key")
    try:
        public = PyJWK(jwk, algorithm=algorithm).key
    except (PyJWTError, ValueError) as exc:
        raise bad(f"not a valid public key: {exc}") from None
    if isinstance(public, Ed25519PublicKey):
        return IssuerKey(kid, algorithm, public)
    if isinstance(public, EllipticCurvePublicKey) and isinstance(public.curve, SECP256R1):
        return IssuerKey(kid, algorithm, public)
    raise bad("not a public Ed25519 or P-256 key")


def _authority(t: FederationTable, agency: str, country: str) -> Authority:
    authority_id = t.identifier()
    kind = t.text("kind", choices=AUTHORITY_KINDS)
    a = Authority(
        id=authority_id,
        name=t.text("name", "") or authority_id,
        kind=kind,  # type: ignore[arg-type]  # checked against AUTHORITY_KINDS above
        country=t.pattern("country", COUNTRY, "an ISO 3166-1 alpha-2 code", default=country),
        agency=agency,
        key=t.verifying_key("key", authority_id),
    )
    t.done()
    return a


def _investigator(t: FederationTable, agency: str, country: str) -> Investigator:
    subject = t.identifier()
    inv = Investigator(
        id=subject,
        agency=agency,
        country=country,
        key=t.verifying_key("key", subject),
        name=t.text("name", ""),
    )
    t.done()
    return inv


def _legal_officer(t: FederationTable, agency: str, country: str) -> LegalOfficer:
    officer = LegalOfficer(
        id=t.identifier(),
        agency=agency,
        country=country,
        name=t.text("name", ""),
    )
    t.done()
    return officer


def _node(t: FederationTable, agency: str, country: str, format: int) -> Node:
    node_id = t.identifier()
    pins = t.sha256_pins("tls_cert_sha256")
    node = Node(
        id=node_id,
        agency=agency,
        country=t.pattern("country", COUNTRY, "an ISO 3166-1 alpha-2 code", default=country),
        endpoint=t.endpoint("endpoint"),
        tls_cert=t.path("tls_cert"),
        tls_cert_sha256=pins[0],
        response_keys=t.key_history("response_key", "response_keys", node_id, format=format),
        witness_keys=t.key_history("witness_key", "witness_keys", node_id, format=format),
        tls_cert_pins=pins,
    )
    response = {k.public_key.public_bytes_raw() for k in node.response_keys.all()}
    for i, k in enumerate(node.witness_keys.all()):
        if k.public_key.public_bytes_raw() in response:
            field = "witness_key" if format == 1 else f"witness_keys[{i}].key"
            raise t.error(field, "must differ from every response key (one key, one purpose)")
    t.done()
    return node


def _gateway(t: FederationTable, format: int) -> GatewayIdentity:
    gateway_id = t.identifier()
    log_table = t.sub("log")
    origin = log_table.text("origin")
    log = LogIdentity(origin=origin, keys=log_table.log_key_history("key", "keys", origin, format=format))
    log_table.done()
    server_pins = t.sha256_pins("tls_cert_sha256")
    client_pins = t.sha256_pins("client_cert_sha256")
    gateway = GatewayIdentity(
        id=gateway_id,
        endpoint=t.endpoint("endpoint"),
        replica_endpoints=_replicas(t),
        tls_cert=t.path("tls_cert"),
        tls_cert_sha256=server_pins[0],
        client_cert=t.path("client_cert"),
        client_cert_sha256=client_pins[0],
        decision_keys=t.key_history("decision_key", "decision_keys", gateway_id, format=format),
        log=log,
        ca_cert=t.optional_path("ca_cert"),
        tls_cert_pins=server_pins,
        client_cert_pins=client_pins,
    )
    t.done()
    return gateway


def _replicas(t: FederationTable) -> tuple[str, ...]:
    replicas = t.endpoints("replica_endpoints")
    if t.text("endpoint") in replicas:
        raise t.error("replica_endpoints", "repeats the gateway's endpoint (list only the other replicas)")
    return replicas


def _check_unique(members: tuple[Member, ...], source: str) -> None:
    """Ids the lookups index by must be unique across the whole federation."""
    seen: dict[str, dict[str, str]] = {k: {} for k in ("agency", "issuer", "authority", "subject", "node")}

    def claim(kind: str, value: str, field: str) -> None:
        if value in seen[kind]:
            raise ConfigError(
                f"{kind} {value!r} is already defined at {seen[kind][value]}", field=field, source=source
            )
        seen[kind][value] = field

    for i, m in enumerate(members):
        at = f"members[{i}]"
        claim("agency", m.agency, f"{at}.agency")
        for j, iss in enumerate(m.issuers):
            claim("issuer", iss.issuer, f"{at}.issuers[{j}].issuer")
        for j, a in enumerate(m.authorities):
            claim("authority", a.id, f"{at}.authorities[{j}].id")
        for j, inv in enumerate(m.investigators):
            claim("subject", inv.id, f"{at}.investigators[{j}].id")
        # One subject, one role: a token must not be both an investigator's and an officer's.
        for j, officer in enumerate(m.legal_officers):
            claim("subject", officer.id, f"{at}.legal_officers[{j}].id")
        for j, n in enumerate(m.nodes):
            claim("node", n.id, f"{at}.nodes[{j}].id")
