"""``comity init``: a complete federation on disk, keys private, everything pinned."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
import typer
from typer.testing import CliRunner, Result

from comity.core.bootstrap import FederationLayout, init_federation, mint_token
from comity.core.errors import ConfigError
from comity.core.federation import Federation
from comity.core.issuer import jwk_thumbprint, load_issuer_key
from comity.core.keys import SigningKey
from comity.core.pki import load_certificate
from comity.sdk.cli.init_cmd import init

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PORTS = {"US": 7101, "CA": 7102}


def said(result: Result) -> str:
    """What a command printed, with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(tmp_path_factory.mktemp("fed") / "f", gateway_port=7443, countries=PORTS, now=NOW)


def _private_files(layout: FederationLayout) -> list[Path]:
    g = layout.gateway
    paths = [g.tls_key, g.client_key, g.ca_key, g.decision_key, g.log_key]
    for n in layout.nodes.values():
        paths += [n.tls_key, n.ca_key, n.response_key, n.witness_key]
    for a in layout.agencies.values():
        paths += [a.issuer_key, a.investigator_key, a.authority_key]
    return paths


def test_every_private_key_is_written_0600(layout: FederationLayout) -> None:
    for path in _private_files(layout):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_federation_pins_what_was_written(layout: FederationLayout) -> None:
    fed = Federation.load(layout.federation_file)
    for node_id, files in layout.nodes.items():
        node = fed.node(node_id)
        assert node.endpoint == files.endpoint
        assert SigningKey.load(files.response_key, key_id=node_id).verifying_key.to_text() == (
            node.response_key.to_text()
        )
        assert SigningKey.load(files.witness_key, key_id=node_id).verifying_key.to_text() == (
            node.witness_key.to_text()
        )
    g = fed.gateway
    assert SigningKey.load(layout.gateway.decision_key, key_id="gateway").verifying_key == g.decision_key
    assert SigningKey.load(layout.gateway.log_key, key_id=g.log.origin).verifying_key == g.log.key
    for agency, files in layout.agencies.items():
        assert fed.investigator(files.investigator).agency == agency
        assert fed.authority(files.authority).country == files.country
        jwks = json.loads(files.jwks.read_text())
        assert list(fed.issuer(files.issuer).keys) == [k["kid"] for k in jwks["keys"]]


def test_certificates_carry_loopback_names_and_pinned_fingerprints(layout: FederationLayout) -> None:
    from cryptography import x509

    from comity.core.pki import fingerprint

    fed = Federation.load(layout.federation_file)
    for node_id, files in layout.nodes.items():
        cert = load_certificate(files.tls_cert)
        assert fingerprint(cert) == fed.node(node_id).tls_cert_sha256
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert fingerprint(load_certificate(layout.gateway.client_cert)) == fed.gateway.client_cert_sha256
    assert fingerprint(load_certificate(layout.gateway.tls_cert)) == fed.gateway.tls_cert_sha256


@pytest.mark.parametrize("agency", ["us.fbi", "ca.rcmp"])
def test_minted_tokens_verify_against_the_published_jwks(layout: FederationLayout, agency: str) -> None:
    files = layout.agencies[agency]
    key = load_issuer_key(files.issuer_key)
    token = mint_token(
        key, issuer=files.issuer, subject=files.investigator, audience=files.audience,
        ttl=timedelta(minutes=10), now=NOW,
    )  # fmt: skip
    header = jwt.get_unverified_header(token)
    assert header["kid"] == jwk_thumbprint(key.public_key())
    issuer = Federation.load(layout.federation_file).issuer(files.issuer)
    jwk = issuer.key(header["kid"])
    claims = jwt.decode(
        token, jwk.public_key, algorithms=[jwk.algorithm], audience=files.audience,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )  # fmt: skip
    assert claims["sub"] == files.investigator
    assert claims["exp"] - claims["iat"] == 600


def test_init_refuses_to_overwrite_a_federation(layout: FederationLayout) -> None:
    with pytest.raises(ConfigError, match="already exists"):
        init_federation(layout.directory, gateway_port=1, countries=PORTS)


def test_init_needs_two_countries_with_valid_codes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least two countries"):
        init_federation(tmp_path, gateway_port=1, countries={"US": 2})
    with pytest.raises(ConfigError, match="'U1' is not a country code"):
        init_federation(tmp_path, gateway_port=1, countries={"US": 2, "U1": 3})


def test_init_writes_format_2_for_any_countries_with_names_made_from_unlisted_codes(tmp_path: Path) -> None:
    layout = init_federation(tmp_path, gateway_port=1, countries={"XA": 2, "XB": 3, "XC": 4}, now=NOW)
    fed = Federation.load(layout.federation_file)
    assert (fed.format, fed.version) == (2, 1)
    assert fed.expires is not None and fed.expires > NOW
    assert [m.country for m in fed.members] == ["XA", "XB", "XC"]
    assert [n.id for n in fed.nodes()] == ["xa-node", "xb-node", "xc-node"]
    assert fed.member("xb.police").country == "XB"
    assert fed.investigator("xc.police/investigator-1").agency == "xc.police"
    assert fed.agreements == ()


def test_passphrase_encrypts_private_keys(tmp_path: Path) -> None:
    layout = init_federation(tmp_path, gateway_port=1, countries=PORTS, passphrase=b"pw")
    key_file = layout.agencies["us.fbi"].investigator_key
    assert b"ENCRYPTED" in key_file.read_bytes()
    SigningKey.load(key_file, key_id="x", passphrase=b"pw")
    Federation.load(layout.federation_file)


def test_init_command_writes_a_federation_and_reports_errors(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(init)
    runner = CliRunner()
    nodes = ["--node", "US:9001", "--node", "CA:9002", "--node", "GB:9003"]
    result = runner.invoke(app, [str(tmp_path / "demo"), "--gateway-port", "9000", *nodes])
    assert result.exit_code == 0, result.output
    assert "gb-node (GB) 127.0.0.1:9003" in said(result)
    fed = Federation.load(tmp_path / "demo" / "federation.toml")
    assert fed.gateway.endpoint == "127.0.0.1:9000"
    assert fed.node("gb-node").endpoint == "127.0.0.1:9003"
    # The shipped bundles make one agreement, between the two countries they name; none with GB.
    assert [(a.id, a.parties) for a in fed.agreements] == [("us-ca-agreement", ("US", "CA"))]
    assert fed.agreement_for("GB", "CA", NOW) is None
    again = runner.invoke(app, [str(tmp_path / "demo"), *nodes])
    assert again.exit_code == 1
    assert "already exists" in said(again)
    twice = runner.invoke(app, [str(tmp_path / "other"), "--node", "US:1", "--node", "US:2"])
    assert twice.exit_code == 1 and "US is given twice" in said(twice)
    bad = runner.invoke(app, [str(tmp_path / "other"), "--node", "US", "--node", "CA:2"])
    assert bad.exit_code == 1 and "--node 'US' is not COUNTRY:PORT" in said(bad)
