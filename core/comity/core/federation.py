"""The federation: who takes part, with which keys, certificates and endpoints.

Every component loads the same federation file (TOML, see :mod:`comity.core.federation_file`)
into the frozen dataclasses below, validated once at start-up; code below never reads raw
dictionaries. The lookups raise :class:`NotFound` naming what is missing.

Key ids, as signers put them in DSSE signatures: an investigator's key is named by the
investigator id (the JWT subject), an authority's by the authority id, a node's response
and witness keys by the node id, the gateway's decision key by the gateway id, and the log's
checkpoint key by the log origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from comity.core.errors import NotFound
from comity.core.keys import VerifyingKey

__all__ = [
    "AUTHORITY_KINDS",
    "Authority",
    "Federation",
    "GatewayIdentity",
    "Investigator",
    "IssuerKey",
    "LegalOfficer",
    "LogIdentity",
    "Member",
    "Node",
    "TokenIssuer",
]

AuthorityKind = Literal["judicial", "independent", "administrative"]
AUTHORITY_KINDS: tuple[AuthorityKind, ...] = ("judicial", "independent", "administrative")
JwtAlgorithm = Literal["EdDSA", "ES256"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IssuerKey:
    """One public key of a token issuer's JWKS: its ``kid``, the only algorithm it may verify, the key."""

    kid: str
    algorithm: JwtAlgorithm
    public_key: Ed25519PublicKey | EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class TokenIssuer:
    """An identity provider whose JWTs identify an agency's investigators."""

    issuer: str
    audience: str
    agency: str
    keys: Mapping[str, IssuerKey]

    def key(self, kid: str) -> IssuerKey:
        """The key with ``kid``; raises :class:`NotFound`."""
        try:
            return self.keys[kid]
        except KeyError:
            raise NotFound(f"issuer {self.issuer!r} has no key with kid {kid!r}") from None


@dataclass(frozen=True, slots=True)
class Authority:
    """An authority allowed to sign legal orders (a court, an independent commissioner, ...)."""

    id: str
    name: str
    kind: AuthorityKind
    country: str
    agency: str
    key: VerifyingKey


@dataclass(frozen=True, slots=True)
class Investigator:
    """A registered investigator: the JWT subject and the Ed25519 key that signs their queries."""

    id: str
    agency: str
    country: str
    key: VerifyingKey
    name: str = ""


@dataclass(frozen=True, slots=True)
class LegalOfficer:
    """A legal officer: the JWT subject allowed to read the audit log's entries through the gateway.

    Legal officers hold no signing key: they sign nothing, they only read and verify.
    """

    id: str
    agency: str
    country: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Node:
    """A data node: where it listens, its pinned TLS certificate, and its signing keys."""

    id: str
    agency: str
    country: str
    endpoint: str
    tls_cert: Path
    tls_cert_sha256: str
    response_key: VerifyingKey
    witness_key: VerifyingKey
    # Every fingerprint pinned for the node, current first; more than one while a certificate
    # is being replaced (tls_cert then holds each of those certificates).
    tls_cert_pins: tuple[str, ...] = ()

    @property
    def pins(self) -> tuple[str, ...]:
        """The fingerprints the gateway accepts for this node."""
        return self.tls_cert_pins or (self.tls_cert_sha256,)

    @property
    def host(self) -> str:
        """The endpoint's host (the name its certificate must carry)."""
        return self.endpoint.rsplit(":", 1)[0].strip("[]")


@dataclass(frozen=True, slots=True)
class Member:
    """An agency taking part in the federation."""

    agency: str
    country: str
    name: str
    issuers: tuple[TokenIssuer, ...]
    authorities: tuple[Authority, ...]
    investigators: tuple[Investigator, ...]
    nodes: tuple[Node, ...]
    legal_officers: tuple[LegalOfficer, ...] = ()


@dataclass(frozen=True, slots=True)
class LogIdentity:
    """The transparency log: its origin line and the key that signs its checkpoints."""

    origin: str
    key: VerifyingKey


@dataclass(frozen=True, slots=True)
class GatewayIdentity:
    """The gateway: endpoint, TLS certificates (pinned), decision key, and its audit log."""

    id: str
    endpoint: str
    tls_cert: Path
    tls_cert_sha256: str
    client_cert: Path
    client_cert_sha256: str
    decision_key: VerifyingKey
    log: LogIdentity
    ca_cert: Path | None = None
    # Every pinned fingerprint, current first; more than one while a certificate is replaced.
    tls_cert_pins: tuple[str, ...] = ()
    client_cert_pins: tuple[str, ...] = ()

    @property
    def server_pins(self) -> tuple[str, ...]:
        """The fingerprints investigators accept for the gateway's server certificate."""
        return self.tls_cert_pins or (self.tls_cert_sha256,)

    @property
    def client_pins(self) -> tuple[str, ...]:
        """The fingerprints nodes accept for the gateway's client certificate."""
        return self.client_cert_pins or (self.client_cert_sha256,)


def _index(items: list[tuple[str, T]]) -> Mapping[str, T]:
    return MappingProxyType(dict(items))


@dataclass(frozen=True)
class Federation:
    """The whole federation file, validated. Build with :meth:`load` (or :meth:`from_toml_text`)."""

    name: str
    members: tuple[Member, ...]
    gateway: GatewayIdentity
    source: Path | None = None
    _members: Mapping[str, Member] = field(init=False, repr=False, compare=False)
    _investigators: Mapping[str, Investigator] = field(init=False, repr=False, compare=False)
    _legal_officers: Mapping[str, LegalOfficer] = field(init=False, repr=False, compare=False)
    _authorities: Mapping[str, Authority] = field(init=False, repr=False, compare=False)
    _nodes: Mapping[str, Node] = field(init=False, repr=False, compare=False)
    _issuers: Mapping[str, TokenIssuer] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        m = self.members
        object.__setattr__(self, "_members", _index([(x.agency, x) for x in m]))
        object.__setattr__(self, "_investigators", _index([(i.id, i) for x in m for i in x.investigators]))
        object.__setattr__(self, "_legal_officers", _index([(o.id, o) for x in m for o in x.legal_officers]))
        object.__setattr__(self, "_authorities", _index([(a.id, a) for x in m for a in x.authorities]))
        object.__setattr__(self, "_nodes", _index([(n.id, n) for x in m for n in x.nodes]))
        object.__setattr__(self, "_issuers", _index([(i.issuer, i) for x in m for i in x.issuers]))

    @classmethod
    def load(cls, path: Path) -> Federation:
        """Read and validate a federation file; raises :class:`ConfigError` naming the bad field."""
        from comity.core.federation_file import parse_federation_file

        return parse_federation_file(path)

    @classmethod
    def from_toml_text(cls, text: str, *, base: Path, source: str = "<federation>") -> Federation:
        """Parse federation TOML held in memory; relative paths are taken from ``base``."""
        from comity.core.federation_file import parse_federation_text

        return parse_federation_text(text, base=base, source=source)

    # ------------------------------------------------------------------ lookups

    def member(self, agency: str) -> Member:
        """The member agency ``agency`` (e.g. ``us.fbi``)."""
        try:
            return self._members[agency]
        except KeyError:
            raise NotFound(
                f"agency {agency!r} is not a member of federation {self.name!r}",
                hint=f"members: {', '.join(sorted(self._members))}",
            ) from None

    def country_of_agency(self, agency: str) -> str:
        """The ISO 3166-1 alpha-2 country of member ``agency``."""
        return self.member(agency).country

    def agencies_of_country(self, country: str) -> tuple[str, ...]:
        """The member agencies of ``country``."""
        return tuple(m.agency for m in self.members if m.country == country)

    def investigator(self, subject: str) -> Investigator:
        """The investigator registered under ``subject`` (the JWT ``sub``)."""
        try:
            return self._investigators[subject]
        except KeyError:
            raise NotFound(f"investigator {subject!r} is not registered in the federation") from None

    def legal_officer(self, subject: str) -> LegalOfficer:
        """The legal officer registered under ``subject`` (the JWT ``sub``)."""
        try:
            return self._legal_officers[subject]
        except KeyError:
            raise NotFound(f"legal officer {subject!r} is not registered in the federation") from None

    def investigator_keys(self) -> Mapping[str, VerifyingKey]:
        """Every investigator's query-signing key, by investigator id."""
        return MappingProxyType({i.id: i.key for i in self._investigators.values()})

    def authority(self, authority_id: str) -> Authority:
        """The authority ``authority_id`` allowed to sign legal orders."""
        try:
            return self._authorities[authority_id]
        except KeyError:
            raise NotFound(f"authority {authority_id!r} is not registered in the federation") from None

    def authorities(self) -> tuple[Authority, ...]:
        """Every authority of every member."""
        return tuple(self._authorities.values())

    def authority_keys(self, *, country: str | None = None) -> Mapping[str, VerifyingKey]:
        """Order-signing keys by authority id, optionally only those of ``country``'s authorities."""
        return MappingProxyType(
            {a.id: a.key for a in self._authorities.values() if country is None or a.country == country}
        )

    def node(self, node_id: str) -> Node:
        """The data node ``node_id`` (e.g. ``us-node``)."""
        try:
            return self._nodes[node_id]
        except KeyError:
            raise NotFound(
                f"node {node_id!r} is not in federation {self.name!r}",
                hint=f"nodes: {', '.join(sorted(self._nodes))}",
            ) from None

    def nodes(self) -> tuple[Node, ...]:
        """Every data node of every member."""
        return tuple(self._nodes.values())

    def node_keys(self) -> Mapping[str, VerifyingKey]:
        """Every node's response-signing key, by node id (what the SDK verifies node statements with)."""
        return MappingProxyType({n.id: n.response_key for n in self._nodes.values()})

    def witness_keys(self) -> Mapping[str, VerifyingKey]:
        """Every node's witness (checkpoint cosigning) key, by node id."""
        return MappingProxyType({n.id: n.witness_key for n in self._nodes.values()})

    def gateway_keys(self) -> Mapping[str, VerifyingKey]:
        """The gateway's decision-signing key under the gateway id (for ``verify_envelope``)."""
        return MappingProxyType({self.gateway.id: self.gateway.decision_key})

    def issuer(self, issuer: str) -> TokenIssuer:
        """The token issuer whose ``iss`` claim is ``issuer``."""
        try:
            return self._issuers[issuer]
        except KeyError:
            raise NotFound(f"token issuer {issuer!r} is not trusted by the federation") from None

    def issuers(self) -> tuple[TokenIssuer, ...]:
        """Every trusted token issuer."""
        return tuple(self._issuers.values())
