"""The gateway's channels to independent witnesses follow each federation version (no network needed).

A witness a version keeps as it was keeps its client (and what the gateway knows of its size); a
moved one gets a new channel; a removed one is no longer asked; a version whose witness
certificate does not match its pin is refused before anything changes. A new client certificate
(taken only once a version pins it) gets each witness a new channel under the same client.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ngo_witness import NGO, independent_witness

from comity.core.errors import ComityError
from comity.core.federation import Federation
from comity.core.pki import CertificateAuthority, IssuedCertificate
from comity.core.tls_reload import GatewayClientTls
from comity.gateway.config import load_gateway_config
from comity.gateway.independent_witnesses import IndependentWitnesses
from comity.sdk.demo.setup import build_demo_federation, free_ports

pytestmark = pytest.mark.asyncio


def _version(file: Path, text: str) -> Federation:
    file.write_text(text)
    return Federation.load(file)


async def test_channels_are_kept_replaced_and_closed_with_the_versions(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=5, seed=29)
    first, moved = free_ports(2)
    entry, _ = independent_witness(fed.directory, first)
    original = fed.layout.federation_file.read_text()
    file = fed.layout.federation_file
    config = load_gateway_config(fed.gateway_config)
    client = GatewayClientTls(config.client_cert, config.client_key, current=lambda: Federation.load(file))
    witnesses = IndependentWitnesses(client=client, deadline=1.0)
    try:
        assert witnesses.use(witnesses.prepare(_version(file, original))) == []
        (client,) = witnesses.use(witnesses.prepare(_version(file, original + entry)))
        assert client.witness_id == NGO
        client.known_size = 7

        # The same entry again: the same client, which still knows the witness's size.
        prepared = witnesses.prepare(_version(file, original + entry))
        assert witnesses.use(prepared) == [client] and client.known_size == 7

        # Moved: a new channel, from size 0.
        (again,) = witnesses.use(
            witnesses.prepare(_version(file, original + entry.replace(f":{first}", f":{moved}")))
        )
        assert again is not client and again.known_size == 0

        # A pin its certificate does not match: refused while preparing, nothing changes.
        wrong = re.sub(r'tls_cert_sha256 = "[0-9a-f]+"', f'tls_cert_sha256 = "{"ab" * 32}"', entry)
        with pytest.raises(ComityError, match=NGO):
            witnesses.prepare(_version(file, original + wrong))
        assert witnesses.clients == [again]

        assert witnesses.use(witnesses.prepare(_version(file, original))) == []
    finally:
        await witnesses.close()


async def test_a_new_client_certificate_gets_new_channels_under_the_same_clients(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=5, seed=41)
    (port,) = free_ports(1)
    entry, _ = independent_witness(fed.directory, port)
    file = fed.layout.federation_file
    text = file.read_text() + entry
    in_use = [_version(file, text)]
    config = load_gateway_config(fed.gateway_config)
    client = GatewayClientTls(config.client_cert, config.client_key, current=lambda: in_use[0])
    witnesses = IndependentWitnesses(client=client, deadline=1.0)
    g = fed.layout.gateway
    old = IssuedCertificate.load(g.client_cert, g.client_key)
    new = CertificateAuthority.load(g.ca_cert, g.ca_key).issue_client("gateway", now=datetime.now(UTC))
    try:
        (witness,) = witnesses.use(witnesses.prepare(in_use[0]))
        witness.known_size, stub = 7, witness.stub
        await witnesses.renew()  # the certificate in use: nothing to renew
        assert witness.stub is stub

        # The gateway's files replaced while the version in use pins only the old one: refused, kept.
        g.client_key.write_bytes(new.private_key_pem)
        g.client_cert.write_bytes(new.certificate_pem)
        assert not client.check() and client.identity == old.fingerprint
        await witnesses.renew()
        assert witness.stub is stub

        # A version pinning the new one: the same client (and known size) on a new channel.
        pinned = text.replace(f'"{old.fingerprint}"', f'"{new.fingerprint}"')
        in_use[0] = _version(file, pinned.replace("\nversion = 1\n", "\nversion = 2\n", 1))
        assert client.check() and client.identity == new.fingerprint
        await witnesses.renew()
        assert witnesses.clients == [witness] and witness.stub is not stub and witness.known_size == 7
        renewed = witness.stub
        await witnesses.renew()
        assert witness.stub is renewed
    finally:
        await witnesses.close()
