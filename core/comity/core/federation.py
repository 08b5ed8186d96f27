"""The federation: who takes part, with which keys, certificates and endpoints.

Every component loads the same federation file (TOML, see :mod:`comity.core.federation_file`)
into the frozen dataclasses below, validated once at start-up; code below never reads raw
dictionaries. The lookups raise :class:`NotFound` naming what is missing.

Key ids, as signers put them in DSSE signatures: an investigator's key is named by the
investigator id (the JWT subject), an authority's by the authority id, a node's response
and witness keys by the node id, the gateway's decision key by the gateway id, the log's
checkpoint key by the log origin, and an independent witness's key by the witness id.

Keys that rotate (log, witness, node response and gateway decision keys) are key histories
(:mod:`comity.core.keyhistory`); the single-key attributes (``Node.witness_key``,
``LogIdentity.key``, ...) are each history's current key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from comity.core.agreements import Agreement, agreement_for
from comity.core.errors import NotFound
from comity.core.keyhistory import KeyHistory, KeysInForce, LogKeyHistory
from comity.core.keys import VerifyingKey
from comity.core.witnesspolicy import WitnessIdentity, WitnessPolicy

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
    "SigningRole",
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
    response_keys: KeyHistory
    witness_keys: KeyHistory
    # Every fingerprint pinned for the node, current first; more than one while a certificate
    # is being replaced (tls_cert then holds each of those certificates).
    tls_cert_pins: tuple[str, ...] = ()

    @property
    def response_key(self) -> VerifyingKey:
        """The key the node signs its statements with now."""
        return self.response_keys.current

    @property
    def witness_key(self) -> VerifyingKey:
        """The key the node cosigns checkpoints with now."""
        return self.witness_keys.current

    @property
    def witness(self) -> WitnessIdentity:
        """The node as a witness of the log: its id is the node id, and so is its key name."""
        return WitnessIdentity(self.id, self.id, self.country, self.endpoint, self.witness_keys)

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
    """The transparency log: its origin line and the keys that sign its checkpoints, by tree size."""

    origin: str
    keys: LogKeyHistory

    @property
    def key(self) -> VerifyingKey:
        """The key signing new checkpoints."""
        return self.keys.current


@dataclass(frozen=True, slots=True)
class GatewayIdentity:
    """The gateway: endpoint, TLS certificates (pinned), decision key, and its audit log.

    ``replica_endpoints`` are further gateway processes serving the same log (one database),
    with the same certificates and keys: nodes reach the log through any of them.
    """

    id: str
    endpoint: str
    tls_cert: Path
    tls_cert_sha256: str
    client_cert: Path
    client_cert_sha256: str
    decision_keys: KeyHistory
    log: LogIdentity
    ca_cert: Path | None = None
    # Every pinned fingerprint, current first; more than one while a certificate is replaced.
    tls_cert_pins: tuple[str, ...] = ()
    client_cert_pins: tuple[str, ...] = ()
    replica_endpoints: tuple[str, ...] = ()

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every endpoint serving the gateway's log: :attr:`endpoint` first, then the replicas."""
        return (self.endpoint, *self.replica_endpoints)

    @property
    def decision_key(self) -> VerifyingKey:
        """The key the gateway signs its decisions with now."""
        return self.decision_keys.current

    @property
    def server_pins(self) -> tuple[str, ...]:
        """The fingerprints investigators accept for the gateway's server certificate."""
        return self.tls_cert_pins or (self.tls_cert_sha256,)

    @property
    def client_pins(self) -> tuple[str, ...]:
        """The fingerprints nodes accept for the gateway's client certificate."""
        return self.client_cert_pins or (self.client_cert_sha256,)


@dataclass(frozen=True, slots=True)
class SigningRole:
    """Who may sign the next version of the file (TUF's root role): ``threshold`` of ``keys``."""

    threshold: int
    keys: Mapping[str, VerifyingKey]


def _now() -> datetime:
    return datetime.now(UTC)


def _index(items: list[tuple[str, T]]) -> Mapping[str, T]:
    return MappingProxyType(dict(items))


@dataclass(frozen=True)
class Federation:
    """The whole federation file, validated. Build with :meth:`load` (or :meth:`from_toml_text`).

    ``format`` is 1 for today's single-key files, 2 for the shape of ``docs/federation.md``;
    ``version``, ``expires`` and ``signing`` are None for a format-1 (unsigned) file.
    ``declared_witness_policy`` is the file's ``[witness_policy]``; without one the policy is
    "every member country, all of its witnesses" (:attr:`witness_policy`).
    """

    name: str
    members: tuple[Member, ...]
    gateway: GatewayIdentity
    source: Path | None = None
    format: int = 1
    version: int | None = None
    expires: datetime | None = None
    signing: SigningRole | None = None
    independent_witnesses: tuple[WitnessIdentity, ...] = ()
    declared_witness_policy: WitnessPolicy | None = None
    agreements: tuple[Agreement, ...] = ()
    _members: Mapping[str, Member] = field(init=False, repr=False, compare=False)
    _investigators: Mapping[str, Investigator] = field(init=False, repr=False, compare=False)
    _legal_officers: Mapping[str, LegalOfficer] = field(init=False, repr=False, compare=False)
    _authorities: Mapping[str, Authority] = field(init=False, repr=False, compare=False)
    _nodes: Mapping[str, Node] = field(init=False, repr=False, compare=False)
    _issuers: Mapping[str, TokenIssuer] = field(init=False, repr=False, compare=False)
    _witnesses: Mapping[str, WitnessIdentity] = field(init=False, repr=False, compare=False)
    _witness_policy: WitnessPolicy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        m = self.members
        object.__setattr__(self, "_members", _index([(x.agency, x) for x in m]))
        object.__setattr__(self, "_investigators", _index([(i.id, i) for x in m for i in x.investigators]))
        object.__setattr__(self, "_legal_officers", _index([(o.id, o) for x in m for o in x.legal_officers]))
        object.__setattr__(self, "_authorities", _index([(a.id, a) for x in m for a in x.authorities]))
        object.__setattr__(self, "_nodes", _index([(n.id, n) for x in m for n in x.nodes]))
        object.__setattr__(self, "_issuers", _index([(i.issuer, i) for x in m for i in x.issuers]))
        witnesses = [n.witness for x in m for n in x.nodes] + list(self.independent_witnesses)
        object.__setattr__(self, "_witnesses", _index([(w.id, w) for w in witnesses]))
        policy = self.declared_witness_policy or WitnessPolicy.every_country(witnesses)
        object.__setattr__(self, "_witness_policy", policy)

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

    def response_keys_in_force(self, clock: Callable[[], datetime] | None = None) -> KeysInForce:
        """Every node's response keys valid at the clock's instant (now), by node id.

        For checking what a node signed a moment ago: both keys during a rotation's overlap.
        """
        histories = {n.id: n.response_keys for n in self._nodes.values()}
        return KeysInForce(histories, clock or _now)

    def decision_keys_in_force(self, clock: Callable[[], datetime] | None = None) -> KeysInForce:
        """The gateway's decision keys valid at the clock's instant (now), under the gateway id."""
        return KeysInForce({self.gateway.id: self.gateway.decision_keys}, clock or _now)

    def witness_keys(self) -> Mapping[str, VerifyingKey]:
        """Every node's witness (checkpoint cosigning) key, by node id."""
        return MappingProxyType({n.id: n.witness_key for n in self._nodes.values()})

    @property
    def witness_policy(self) -> WitnessPolicy:
        """The quorum a checkpoint needs before it counts."""
        return self._witness_policy

    def witness_identities(self) -> tuple[WitnessIdentity, ...]:
        """Every witness: each node's (in the file's order), then the independent ones."""
        return tuple(self._witnesses.values())

    def witness_identity(self, witness_id: str) -> WitnessIdentity:
        """The witness ``witness_id`` (a node id, or an independent witness's id)."""
        try:
            return self._witnesses[witness_id]
        except KeyError:
            raise NotFound(
                f"witness {witness_id!r} is not in federation {self.name!r}",
                hint=f"witnesses: {', '.join(sorted(self._witnesses))}",
            ) from None

    def agreement_for(
        self, requesting_country: str, responding_country: str, at: datetime
    ) -> Agreement | None:
        """The agreement binding both countries in force at ``at``; None: no agreement (``NO_AGREEMENT``)."""
        return agreement_for(self.agreements, requesting_country, responding_country, at)

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
