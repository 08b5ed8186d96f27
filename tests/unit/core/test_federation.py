"""The federation file: loading, lookups, and errors that name the field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from comity.core.bootstrap import FederationLayout, init_federation
from comity.core.errors import ConfigError, NotFound
from comity.core.federation import Federation
from comity.core.keys import SigningKey


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(
        tmp_path_factory.mktemp("fed"),
        gateway_port=7443,
        countries={"US": 7101, "CA": 7102},
        format=1,
        name="us-ca",
    )


@pytest.fixture(scope="module")
def text(layout: FederationLayout) -> str:
    return layout.federation_file.read_text()


def load(text: str, layout: FederationLayout) -> Federation:
    return Federation.from_toml_text(text, base=layout.directory, source="fed.toml")


def test_init_output_loads_with_every_lookup(layout: FederationLayout) -> None:
    fed = Federation.load(layout.federation_file)
    assert fed.name == "us-ca"
    assert fed.source == layout.federation_file
    assert [m.agency for m in fed.members] == ["us.fbi", "ca.rcmp"]
    assert fed.country_of_agency("ca.rcmp") == "CA"
    assert fed.agencies_of_country("US") == ("us.fbi",)
    inv = fed.investigator("us.fbi/agent-1")
    assert (inv.agency, inv.country, inv.key.key_id) == ("us.fbi", "US", "us.fbi/agent-1")
    key = SigningKey.load(layout.agencies["us.fbi"].investigator_key, key_id=inv.id)
    assert key.verifying_key.to_text() == inv.key.to_text()
    assert set(fed.authority_keys()) == {"us.court.sdny", "ca.court.onsc"}
    assert set(fed.authority_keys(country="CA")) == {"ca.court.onsc"}
    assert fed.authority("ca.court.onsc").kind == "judicial"
    node = fed.node("ca-node")
    assert (node.country, node.endpoint, node.host) == ("CA", "127.0.0.1:7102", "127.0.0.1")
    assert node.tls_cert == layout.nodes["ca-node"].tls_cert.resolve()
    assert set(fed.node_keys()) == set(fed.witness_keys()) == {"us-node", "ca-node"}
    assert fed.gateway_keys()["gateway"] == fed.gateway.decision_key
    assert fed.gateway.log.key.key_id == fed.gateway.log.origin
    issuer = fed.issuer("https://id.rcmp.example")
    assert issuer.agency == "ca.rcmp"
    assert [k.algorithm for k in issuer.keys.values()] == ["ES256"]
    assert [k.algorithm for k in fed.issuer("https://id.fbi.example").keys.values()] == ["EdDSA"]


@pytest.mark.parametrize(
    ("lookup", "needle"),
    [
        (lambda f: f.node("xx-node"), "xx-node"),
        (lambda f: f.member("xx.nobody"), "xx.nobody"),
        (lambda f: f.investigator("ghost"), "ghost"),
        (lambda f: f.authority("us.court.nowhere"), "us.court.nowhere"),
        (lambda f: f.issuer("https://evil.example"), "https://evil.example"),
    ],
)
def test_lookups_of_unknown_names_raise_not_found_naming_them(
    layout: FederationLayout, lookup: object, needle: str
) -> None:
    fed = Federation.load(layout.federation_file)
    with pytest.raises(NotFound, match=re.escape(needle)):
        lookup(fed)  # type: ignore[operator]


def _replace_nth(text: str, old: str, new: str, n: int = 0) -> str:
    parts = text.split(old)
    assert len(parts) > n + 1, old
    return old.join(parts[: n + 1]) + new + old.join(parts[n + 1 :])


def _set_line(text: str, key: str, value: str, n: int = 0) -> str:
    lines = text.splitlines()
    hits = [i for i, line in enumerate(lines) if line.startswith(f"{key} = ")]
    lines[hits[n]] = f"{key} = {value}"
    return "\n".join(lines) + "\n"


BAD_FIELDS = [
    (
        "endpoint of the second node",
        lambda t: _set_line(t, "endpoint", '"127.0.0.1"', 2),
        "members[1].nodes[0].endpoint",
    ),
    ("port out of range", lambda t: _set_line(t, "endpoint", '"h:70000"', 1), "members[0].nodes[0].endpoint"),
    ("country not ISO", lambda t: _set_line(t, "country", '"Canada"', 1), "members[1].country"),
    ("agency id", lambda t: _set_line(t, "agency", '"FBI"'), "members[0].agency"),
    ("authority kind", lambda t: _set_line(t, "kind", '"police"', 1), "members[1].authorities[0].kind"),
    ("bad key text", lambda t: _set_line(t, "key", '"ed25519:AAAA"', 1), "members[0].authorities[0].key"),
    ("not a key", lambda t: _set_line(t, "key", '"rsa:xyz"', 2), "members[0].investigators[0].key"),
    ("fingerprint", lambda t: _set_line(t, "tls_cert_sha256", '"abc"'), "gateway.tls_cert_sha256"),
    ("missing name", lambda t: t.replace('name = "us-ca"\n', ""), "name"),
    (
        "misspelt key",
        lambda t: t.replace("[gateway.log]\n", "[gateway.log]\norign = 1\n"),
        "gateway.log.orign",
    ),
    ("missing decision key", lambda t: re.sub(r"decision_key = .*\n", "", t), "gateway.decision_key"),
    (
        "jwks file missing",
        lambda t: t.replace("jwks/ca.rcmp.json", "jwks/nope.json"),
        "members[1].issuers[0].jwks_file",
    ),
    ("duplicate node", lambda t: t.replace('id = "ca-node"', 'id = "us-node"'), "members[1].nodes[0].id"),
    (
        "duplicate investigator",
        lambda t: t.replace('"ca.rcmp/constable-1"', '"us.fbi/agent-1"'),
        "members[1].investigators[0].id",
    ),
    (
        "duplicate issuer",
        lambda t: t.replace("https://id.rcmp.example", "https://id.fbi.example"),
        "members[1].issuers[0].issuer",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "field"), BAD_FIELDS, ids=[c[0] for c in BAD_FIELDS])
def test_a_bad_file_names_the_field(
    layout: FederationLayout, text: str, case: str, mutate: object, field: str
) -> None:
    bad = mutate(text)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        load(bad, layout)
    assert info.value.field == field, info.value.message
    assert info.value.message.startswith("fed.toml: ")


def test_witness_key_must_differ_from_response_key(layout: FederationLayout, text: str) -> None:
    response = re.search(r"response_key = (.*)\n", text)
    assert response
    bad = re.sub(r"witness_key = .*\n", f"witness_key = {response.group(1)}\n", text, count=1)
    with pytest.raises(ConfigError) as info:
        load(bad, layout)
    assert info.value.field == "members[0].nodes[0].witness_key"


def _inline_jwks(text: str, layout: FederationLayout, jwks: object) -> str:
    return text.replace('jwks_file = "jwks/us.fbi.json"', f"jwks = {json.dumps(json.dumps(jwks))}")


def test_inline_jwks_is_accepted(layout: FederationLayout, text: str) -> None:
    jwks = json.loads(layout.agencies["us.fbi"].jwks.read_text())
    fed = load(_inline_jwks(text, layout, jwks), layout)
    assert list(fed.issuer("https://id.fbi.example").keys) == [jwks["keys"][0]["kid"]]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"kty": "oct", "k": "c2VjcmV0"}, "only Ed25519"),
        ({"alg": "HS256"}, "verifies EdDSA only"),
        ({"kid": None}, "needs a 'kid'"),
        ({"d": "AAAA"}, "private key material"),
        ({"use": "enc"}, "use 'sig'"),
        ({"crv": "P-256", "kty": "EC", "alg": "ES256"}, "not a valid public key"),
    ],
)
def test_jwks_keys_other_than_public_eddsa_or_es256_are_refused(
    layout: FederationLayout, text: str, change: dict[str, object], why: str
) -> None:
    jwks = json.loads(layout.agencies["us.fbi"].jwks.read_text())
    key = {**jwks["keys"][0], **change}
    jwks["keys"][0] = {k: v for k, v in key.items() if v is not None}
    with pytest.raises(ConfigError, match=re.escape(why)) as info:
        load(_inline_jwks(text, layout, jwks), layout)
    assert info.value.field == "members[0].issuers[0].jwks.keys[0]"


def test_jwks_and_jwks_file_are_exclusive(layout: FederationLayout, text: str) -> None:
    bad = text.replace('jwks_file = "jwks/us.fbi.json"', 'jwks_file = "jwks/us.fbi.json"\njwks = "{}"')
    with pytest.raises(ConfigError, match="exactly one"):
        load(bad, layout)


def test_missing_file_and_broken_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read federation file"):
        Federation.load(tmp_path / "nope.toml")
    (tmp_path / "f.toml").write_text("name = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Federation.load(tmp_path / "f.toml")


def test_inline_jwks_as_a_toml_table(layout: FederationLayout, text: str) -> None:
    key = json.loads(layout.agencies["ca.rcmp"].jwks.read_text())["keys"][0]
    table = ", ".join(f"{k} = {json.dumps(v)}" for k, v in key.items())
    inline = text.replace('jwks_file = "jwks/ca.rcmp.json"', f"jwks = {{ keys = [{{ {table} }}] }}")
    fed = load(inline, layout)
    assert list(fed.issuer("https://id.rcmp.example").keys) == [key["kid"]]


def test_pins_may_list_several_fingerprints_while_a_certificate_is_replaced(
    layout: FederationLayout, text: str
) -> None:
    fed = Federation.load(layout.federation_file)
    current = fed.node("us-node").tls_cert_sha256
    both = text.replace(f'"{current}"', f'["{"a" * 64}", "{current}"]')
    node = load(both, layout).node("us-node")
    assert node.pins == ("a" * 64, current)
    assert node.tls_cert_sha256 == "a" * 64
    assert fed.node("us-node").pins == (current,)
    with pytest.raises(ConfigError) as info:
        load(text.replace(f'"{current}"', f'["{current}", "nope"]'), layout)
    assert info.value.field == "members[0].nodes[0].tls_cert_sha256"


def test_legal_officers_are_listed_per_member_and_hold_one_role(layout: FederationLayout, text: str) -> None:
    fed = load(text, layout)
    officer = fed.legal_officer("ca.rcmp/legal-1")
    assert (officer.agency, officer.country) == ("ca.rcmp", "CA")
    with pytest.raises(NotFound, match=r"legal officer 'us\.fbi/agent-1' is not registered"):
        fed.legal_officer("us.fbi/agent-1")
    # An investigator's id listed again as a legal officer: one token would carry both roles.
    doubled = text.replace('id = "us.fbi/legal-1"', 'id = "us.fbi/agent-1"')
    with pytest.raises(ConfigError, match=r"subject 'us.fbi/agent-1' is already defined") as info:
        load(doubled, layout)
    assert info.value.field == "members[0].legal_officers[0].id"
    with pytest.raises(ConfigError) as info:
        load(text.replace('id = "us.fbi/legal-1"', 'id = "us.fbi/legal-1"\nkey = "x"'), layout)
    assert "legal_officers[0].key" in str(info.value.diagnostics())


def _with_replicas(text: str, value: str) -> str:
    return _replace_nth(
        text, 'endpoint = "127.0.0.1:7443"\n', f'endpoint = "127.0.0.1:7443"\nreplica_endpoints = {value}\n'
    )


def test_gateway_replicas_are_listed_after_the_endpoint(layout: FederationLayout, text: str) -> None:
    assert load(text, layout).gateway.endpoints == ("127.0.0.1:7443",)
    fed = load(_with_replicas(text, '["127.0.0.1:7444", "gw-2.example:7443"]'), layout)
    assert fed.gateway.endpoints == ("127.0.0.1:7443", "127.0.0.1:7444", "gw-2.example:7443")
    assert fed.gateway.endpoint == "127.0.0.1:7443"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('["127.0.0.1"]', "must be host:port"),
        ('["127.0.0.1:7444", "127.0.0.1:7444"]', "lists an endpoint twice"),
        ('["127.0.0.1:7443"]', "repeats the gateway's endpoint"),
        ("[]", "non-empty array"),
        ('"127.0.0.1:7444"', "non-empty array"),
    ],
)
def test_bad_gateway_replicas_are_refused_naming_the_field(
    layout: FederationLayout, text: str, value: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(_with_replicas(text, value), layout)
    assert info.value.field == "gateway.replica_endpoints"
    assert words in info.value.message
