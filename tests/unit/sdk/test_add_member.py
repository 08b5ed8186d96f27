"""``comity federation add-member``: a new member's files, and the next version the current signers sign."""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from comity.core.bootstrap import FederationLayout, federation_key_id, init_federation
from comity.core.federation import Federation
from comity.core.federation_sign import BelowThreshold, sign_federation_file, verify_update
from comity.core.keys import SigningKey
from comity.core.pki import fingerprint, load_certificate
from comity.policy.bundle import PolicyBundle
from comity.policy.pairing import agreements_from_bundles, shipped_bundles
from comity.sdk.cli.federation_cmd import app
from comity.sdk.cli.init_cmd import init
from tests.e2e.three_countries import third_country_bundles

NOW = datetime.now(UTC)


def said(result: Result) -> str:
    """What a command printed, with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PolicyBundle]:
    return third_country_bundles(tmp_path_factory.mktemp("bundles"))


def _two(directory: Path, **kwargs: object) -> FederationLayout:
    agreements = agreements_from_bundles(shipped_bundles(), ("US", "CA"))
    return init_federation(
        directory,
        gateway_port=7443,
        countries={"US": 7101, "CA": 7102},
        agreements=agreements,
        signing=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _add(file: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["add-member", str(file), *args])


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, PolicyBundle]) -> FederationLayout:
    layout = _two(tmp_path_factory.mktemp("fed") / "f")
    folder = next(iter(bundles.values())).path.parent
    result = _add(layout.federation_file, "--node", "GB:7103", "--bundles", str(folder))
    assert result.exit_code == 0, result.output
    assert "wrote version 2" in said(result) and "agreement us-gb-agreement: US – GB" in said(result)
    return layout


def test_init_writes_a_signing_role_of_every_agency_with_a_majority(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _init_app(), [str(tmp_path / "f"), "--node", "US:7101", "--node", "CA:7102", "--node", "GB:7103"]
    )
    assert result.exit_code == 0, result.output
    role = Federation.load(tmp_path / "f" / "federation.toml").signing
    assert role is not None and role.threshold == 2
    assert sorted(role.keys) == ["ca.rcmp/federation", "gb.nca/federation", "us.fbi/federation"]
    key = SigningKey.load(tmp_path / "f" / "keys" / "gb.nca" / "federation.key", key_id="x")
    assert role.keys["gb.nca/federation"].to_text() == key.verifying_key.to_text()
    assert "next version signed by 2 of the 3" in said(result)


def _init_app() -> typer.Typer:
    one = typer.Typer()
    one.command()(init)
    return one


def test_the_next_version_adds_the_member_and_changes_nothing_else(joined: FederationLayout) -> None:
    old = joined.federation_file.read_text()
    new = joined.federation_file.with_name("federation.v2.toml").read_text()
    head = re.compile(r"^(version|expires) = .*$", re.MULTILINE)
    assert "version = 2\n" in new and "version = 1\n" in old
    assert head.sub("", new).startswith(head.sub("", old))  # only additions after the two header lines
    fed = Federation.load(joined.federation_file.with_name("federation.v2.toml"))
    assert fed.version == 2 and [m.country for m in fed.members] == ["US", "CA", "GB"]
    assert [(a.id, a.parties) for a in fed.agreements] == [
        ("us-ca-agreement", ("US", "CA")),
        ("us-gb-agreement", ("US", "GB")),
    ]
    assert fed.agreement_for("GB", "CA", NOW) is None
    assert fed.signing is not None and fed.signing.threshold == 2
    assert sorted(fed.signing.keys) == ["ca.rcmp/federation", "gb.nca/federation", "us.fbi/federation"]
    assert [g.country for g in fed.witness_policy.groups] == ["US", "CA", "GB"]  # the default: every country


def test_the_new_members_files_are_pinned_private_and_its_node_configured(joined: FederationLayout) -> None:
    d = joined.directory
    fed = Federation.load(d / "federation.v2.toml")
    node = fed.node("gb-node")
    assert node.endpoint == "127.0.0.1:7103"
    assert fingerprint(load_certificate(d / "pki" / "gb" / "gb-node.crt")) in node.pins
    assert SigningKey.load(
        d / "keys" / "gb-node" / "witness.key", key_id="gb-node"
    ).verifying_key.to_text() == (node.witness_key.to_text())
    issuer = fed.issuer("https://id.nca.example")
    assert issuer.agency == "gb.nca" and issuer.keys
    for private in (
        "gb-node/response.key",
        "gb-node/witness.key",
        "gb.nca/issuer.key",
        "gb.nca/federation.key",
    ):
        assert stat.S_IMODE((d / "keys" / private).stat().st_mode) == 0o600, private
    from comity.nodes.config import load_node_config

    config = load_node_config(d / "configs" / "gb-node.toml")
    assert config.node_id == "gb-node" and config.federation.resolve() == (d / "federation.toml").resolve()
    assert config.bundle_store is not None and config.bundle_store.resolve() == (d / "bundles").resolve()
    digests = {p.name for p in (d / "bundles").iterdir()}
    assert len(digests) == 3  # the new agreement's three bundles, by digest


def test_the_current_signers_threshold_makes_it_trusted_and_the_newcomer_cannot(
    joined: FederationLayout,
) -> None:
    v2 = joined.federation_file.with_name("federation.v2.toml")
    trusted = Federation.load(joined.federation_file)
    keys = {
        a: SigningKey.load(f.federation_key, key_id=federation_key_id(a))
        for a, f in joined.agencies.items()
        if f.federation_key
    }
    newcomer = SigningKey.load(
        joined.directory / "keys" / "gb.nca" / "federation.key", key_id="gb.nca/federation"
    )
    copy = v2.with_name("federation.v2-signed.toml")  # beside it: its paths are relative
    copy.write_bytes(v2.read_bytes())
    sign_federation_file(copy, newcomer)
    sign_federation_file(copy, keys["us.fbi"])
    with pytest.raises(BelowThreshold) as caught:
        verify_update(trusted, copy, now=NOW)
    assert "not counted: gb.nca/federation" in caught.value.message
    sign_federation_file(copy, keys["ca.rcmp"])
    assert verify_update(trusted, copy, now=NOW).version == 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--node", "US:7103"], "US is already a member of federation"),
        (["--node", "G1:7103"], "is not COUNTRY:PORT"),
        (["--node", "GBR:7103"], "is not COUNTRY:PORT"),
        (["--node", "GB:7103", "--bundles", "no-such-folder"], "no-such-folder: no such folder"),
        (["--node", "GB:7103", "--agreement", "us-gb-agreement"], "no gateway bundle named us-gb-agreement"),
        (["--node", "GB:7103", "--agreement", "us-ca-agreement"], "no gateway bundle named us-ca-agreement"),
    ],
)
def test_refusals_are_worded_and_write_nothing(tmp_path: Path, args: list[str], words: str) -> None:
    layout = _two(tmp_path / "f")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = _add(layout.federation_file, *args)
    assert result.exit_code == 1, result.output
    assert words in said(result) and "Traceback" not in result.output
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_file_without_a_signing_role_is_refused(tmp_path: Path) -> None:
    layout = init_federation(tmp_path / "f", gateway_port=7443, countries={"US": 7101, "CA": 7102})
    result = _add(layout.federation_file, "--node", "GB:7103")
    assert result.exit_code == 1
    assert "names no [signing] keys" in said(result)
    assert not (tmp_path / "f" / "keys" / "gb-node").exists()


def test_a_declared_witness_policy_gets_the_new_countrys_group_and_threshold_can_change(
    tmp_path: Path, bundles: dict[str, PolicyBundle]
) -> None:
    layout = _two(tmp_path / "f")
    text = layout.federation_file.read_text()
    policy = '\n[witness_policy]\nmax_delay = "30s"\n[[witness_policy.groups]]\ncountry = "US"\n'
    policy += '[[witness_policy.groups]]\ncountry = "CA"\n'
    layout.federation_file.write_text(text + policy)
    folder = next(iter(bundles.values())).path.parent
    result = _add(
        layout.federation_file, "--node", "GB:7103", "--bundles", str(folder), "--threshold", "3", "--out",
        str(tmp_path / "f" / "next.toml"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    fed = Federation.load(tmp_path / "f" / "next.toml")
    assert [g.country for g in fed.witness_policy.groups] == ["US", "CA", "GB"]
    assert fed.signing is not None and fed.signing.threshold == 3


def test_the_next_version_goes_beside_the_current_one(tmp_path: Path) -> None:
    layout = _two(tmp_path / "f")
    result = _add(layout.federation_file, "--node", "GB:7103", "--out", str(tmp_path / "elsewhere.toml"))
    assert result.exit_code == 1 and "is not beside" in said(result)


def test_a_format_1_file_is_refused(tmp_path: Path) -> None:
    layout = init_federation(tmp_path / "f", gateway_port=7443, countries={"US": 7101, "CA": 7102}, format=1)
    result = _add(layout.federation_file, "--node", "GB:7103")
    assert result.exit_code == 1 and "is a format-1 file: it has no versions" in said(result)


def test_what_an_earlier_attempt_left_is_never_overwritten(tmp_path: Path) -> None:
    layout = _two(tmp_path / "f")
    assert _add(layout.federation_file, "--node", "GB:7103").exit_code == 0
    key = tmp_path / "f" / "keys" / "gb-node" / "witness.key"
    before = key.read_bytes()
    (tmp_path / "f" / "federation.v2.toml").unlink()  # the release was dropped, the keys were not
    result = _add(layout.federation_file, "--node", "GB:7103")
    assert result.exit_code == 1 and "already exists; nothing was written" in said(result)
    assert key.read_bytes() == before and not (tmp_path / "f" / "federation.v2.toml").exists()
