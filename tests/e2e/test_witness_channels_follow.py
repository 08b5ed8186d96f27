"""The gateway's channels to independent witnesses follow each federation version (no network needed).

A witness a version keeps as it was keeps its client (and what the gateway knows of its size); a
moved one gets a new channel; a removed one is no longer asked; a version whose witness
certificate does not match its pin is refused before anything changes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ngo_witness import NGO, independent_witness

from comity.core.errors import ComityError
from comity.core.federation import Federation
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
    witnesses = IndependentWitnesses(
        client_cert=config.client_cert, client_key=config.client_key, passphrase=None, deadline=1.0
    )
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
