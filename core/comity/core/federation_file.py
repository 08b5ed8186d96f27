"""Reading the federation file (TOML) into :class:`~comity.core.federation.Federation`.

The file, in outline (paths are relative to the file's folder)::

    name = "us-ca"

    [gateway]
    id = "gateway"
    endpoint = "127.0.0.1:7443"
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
import re
import tomllib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from comity.core.configfile import Section
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
    TokenIssuer,
)
from comity.core.keys import KeyFileError, VerifyingKey, public_key_from_text

__all__ = ["parse_federation_file", "parse_federation_text"]

_AGENCY = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9-]+)+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@:-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# (kty, crv) → the one algorithm such a key may verify; anything else is refused at load time.
_JWK_ALGORITHMS: dict[tuple[str, str], JwtAlgorithm] = {("OKP", "Ed25519"): "EdDSA", ("EC", "P-256"): "ES256"}
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


class _Table(Section):
    """A Section that also reads arrays of tables, keys, ids and pinned fingerprints."""

    def at(self, key: str) -> str:
        """The dotted name of ``key`` in this table (for error messages)."""
        return f"{self.prefix}.{key}" if self.prefix else key

    def tables(self, key: str, *, required: bool = True) -> list[_Table]:
        self._seen.add(key)
        value = self._data.get(key)
        if value is None:
            if required:
                raise self.error(key, "required array of tables is missing")
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(key, f"must be an array of tables ([[{self.at(key)}]])")
        if required and not value:
            raise self.error(key, "must list at least one entry")
        return [
            _Table(v, source=self.source, base=self.base, prefix=f"{self.at(key)}[{i}]")
            for i, v in enumerate(value)
        ]

    def raw(self, key: str) -> Any:
        """The value of ``key`` as TOML gave it (for values with more than one accepted form)."""
        self._seen.add(key)
        return self._data[key]

    def sub(self, key: str) -> _Table:
        t = self.table(key)
        return _Table(t._data, source=t.source, base=t.base, prefix=t.prefix)

    def pattern(self, key: str, regex: re.Pattern[str], what: str, default: str | None = None) -> str:
        value = self.text(key) if default is None or self.has(key) else default
        if not regex.match(value):
            raise self.error(key, f"{value!r} is not {what}")
        return value

    def verifying_key(self, key: str, key_id: str) -> VerifyingKey:
        try:
            return VerifyingKey(key_id, public_key_from_text(self.text(key)))
        except KeyFileError as exc:
            raise self.error(key, exc.message) from None

    def sha256_pins(self, key: str) -> tuple[str, ...]:
        """One fingerprint, or an array of them (current first) while a certificate is replaced."""
        raw = self.raw(key) if self.has(key) else self.text(key)
        values = raw if isinstance(raw, list) and raw else [raw]
        pins = []
        for value in values:
            text = (
                value.strip().lower().removeprefix("sha256:").replace(":", "")
                if isinstance(value, str)
                else ""
            )
            if not _SHA256.match(text):
                raise self.error(key, "must be a SHA-256 fingerprint (64 hex digits) or an array of them")
            pins.append(text)
        return tuple(pins)

    def endpoint(self, key: str) -> str:
        value = self.text(key)
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise self.error(key, f"{value!r} must be host:port with a port from 1 to 65535")
        return value


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
    root = _Table(data, source=source, base=base, prefix="")
    name = root.text("name")
    members = tuple(_member(t) for t in root.tables("members"))
    gateway = _gateway(root.sub("gateway"))
    root.done()
    _check_unique(members, source)
    return Federation(name=name, members=members, gateway=gateway, source=path)


def _member(t: _Table) -> Member:
    agency = t.pattern("agency", _AGENCY, "an agency id like 'us.fbi'")
    country = t.pattern("country", _COUNTRY, "an ISO 3166-1 alpha-2 code like 'US'")
    name = t.text("name", "") or agency
    issuers = tuple(_issuer(i, agency) for i in t.tables("issuers", required=False))
    authorities = tuple(_authority(a, agency, country) for a in t.tables("authorities", required=False))
    investigators = tuple(
        _investigator(i, agency, country) for i in t.tables("investigators", required=False)
    )
    nodes = tuple(_node(n, agency, country) for n in t.tables("nodes", required=False))
    officers = tuple(_legal_officer(o, agency, country) for o in t.tables("legal_officers", required=False))
    t.done()
    return Member(agency, country, name, issuers, authorities, investigators, nodes, officers)


def _issuer(t: _Table, agency: str) -> TokenIssuer:
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


def _authority(t: _Table, agency: str, country: str) -> Authority:
    authority_id = t.pattern("id", _ID, "an id (letters, digits, . _ / @ : -)")
    kind = t.text("kind", choices=AUTHORITY_KINDS)
    a = Authority(
        id=authority_id,
        name=t.text("name", "") or authority_id,
        kind=kind,  # type: ignore[arg-type]  # checked against AUTHORITY_KINDS above
        country=t.pattern("country", _COUNTRY, "an ISO 3166-1 alpha-2 code", default=country),
        agency=agency,
        key=t.verifying_key("key", authority_id),
    )
    t.done()
    return a


def _investigator(t: _Table, agency: str, country: str) -> Investigator:
    subject = t.pattern("id", _ID, "an id (letters, digits, . _ / @ : -)")
    inv = Investigator(
        id=subject,
        agency=agency,
        country=country,
        key=t.verifying_key("key", subject),
        name=t.text("name", ""),
    )
    t.done()
    return inv


def _legal_officer(t: _Table, agency: str, country: str) -> LegalOfficer:
    officer = LegalOfficer(
        id=t.pattern("id", _ID, "an id (letters, digits, . _ / @ : -)"),
        agency=agency,
        country=country,
        name=t.text("name", ""),
    )
    t.done()
    return officer


def _node(t: _Table, agency: str, country: str) -> Node:
    node_id = t.pattern("id", _ID, "an id (letters, digits, . _ / @ : -)")
    pins = t.sha256_pins("tls_cert_sha256")
    node = Node(
        id=node_id,
        agency=agency,
        country=t.pattern("country", _COUNTRY, "an ISO 3166-1 alpha-2 code", default=country),
        endpoint=t.endpoint("endpoint"),
        tls_cert=t.path("tls_cert"),
        tls_cert_sha256=pins[0],
        response_key=t.verifying_key("response_key", node_id),
        witness_key=t.verifying_key("witness_key", node_id),
        tls_cert_pins=pins,
    )
    if node.response_key.public_key == node.witness_key.public_key:
        raise t.error("witness_key", "must differ from response_key (one key, one purpose)")
    t.done()
    return node


def _gateway(t: _Table) -> GatewayIdentity:
    gateway_id = t.pattern("id", _ID, "an id (letters, digits, . _ / @ : -)")
    log_table = t.sub("log")
    origin = log_table.text("origin")
    log = LogIdentity(origin=origin, key=log_table.verifying_key("key", origin))
    log_table.done()
    server_pins = t.sha256_pins("tls_cert_sha256")
    client_pins = t.sha256_pins("client_cert_sha256")
    gateway = GatewayIdentity(
        id=gateway_id,
        endpoint=t.endpoint("endpoint"),
        tls_cert=t.path("tls_cert"),
        tls_cert_sha256=server_pins[0],
        client_cert=t.path("client_cert"),
        client_cert_sha256=client_pins[0],
        decision_key=t.verifying_key("decision_key", gateway_id),
        log=log,
        ca_cert=t.optional_path("ca_cert"),
        tls_cert_pins=server_pins,
        client_cert_pins=client_pins,
    )
    t.done()
    return gateway


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
