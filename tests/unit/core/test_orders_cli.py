"""Order descriptions, envelope files and the `comity order` commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from comity.core.bootstrap import FederationLayout, init_federation
from comity.core.errors import ConfigError
from comity.core.federation import Federation
from comity.core.order_file import order_from_mapping, read_envelope, read_order_description, write_envelope
from comity.core.orders import verify_order
from comity.sdk.cli.order_cmd import app
from comity.v1 import comity_pb2 as pb

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

DESCRIPTION = """\
order_id = "US-SDNY-2026-0142"
issuing_authority = "us.court.sdny"
issuing_country = "US"
offence_code = "US-18-1343"
authorised_by = "Hon. A. Judge"
authorisation_type = "judicial"
selectors = ["email:target@example.org", { type = "phone", value = "+15551234567" }]
categories = ["subscriber", "traffic"]
valid_from = 2026-11-01T00:00:00Z
valid_until = 2027-02-01T00:00:00Z
max_records = 50
[target]
nationalities = ["MX", "GB"]
residences = ["MX"]
locations = ["MX"]
kind = "natural-person"
not_for_third_government = true
"""
# The same order without its [target] table, for the command-line options.
BARE = DESCRIPTION.split("[target]")[0]


TARGET = {
    "nationalities": ["MX"],
    "residences": ["MX"],
    "locations": ["MX"],
    "kind": "natural-person",
    "not_for_third_government": True,
}


def said(result: Result) -> str:
    """What a command printed, with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(
        tmp_path_factory.mktemp("fed"), gateway_port=1, countries={"US": 2, "CA": 3}, now=NOW
    )


def test_a_toml_description_becomes_a_legal_order(tmp_path: Path) -> None:
    path = tmp_path / "order.toml"
    path.write_text(DESCRIPTION)
    order = read_order_description(path)
    assert order.order_id == "US-SDNY-2026-0142"
    assert [(s.type, s.value) for s in order.selectors] == [
        (pb.EMAIL, "target@example.org"),
        (pb.PHONE, "+15551234567"),
    ]
    assert list(order.categories) == [pb.SUBSCRIBER, pb.TRAFFIC]
    assert order.valid_until.ToDatetime(tzinfo=UTC) == datetime(2027, 2, 1, tzinfo=UTC)
    assert list(order.target.nationalities) == ["MX", "GB"]
    assert order.target.kind == pb.NATURAL_PERSON and order.target.not_for_third_government
    assert not order.HasField("attestation")
    assert order.max_records == 50


def test_a_json_description_with_iso_times(tmp_path: Path) -> None:
    import tomllib

    data = tomllib.loads(DESCRIPTION)
    data["valid_from"] = "2026-11-01T00:00:00+00:00"
    data["valid_until"] = "2027-02-01T00:00:00Z"
    path = tmp_path / "order.json"
    path.write_text(json.dumps(data))
    assert read_order_description(path).valid_from.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"order_id": ""}, "order_id"),
        ({"authorisation_type": "police"}, "authorisation_type"),
        ({"selectors": ["email"]}, "selectors[0]"),
        ({"selectors": ["fingerprint:x"]}, "selectors[0]"),
        ({"categories": ["everything"]}, "categories[0]"),
        ({"valid_from": "2026-11-01T00:00:00"}, "valid_from"),
        ({"valid_until": None}, "valid_until"),
        ({"max_records": -1}, "max_records"),
        ({"attestation": {"nationality": "CA"}}, "attestation"),
        ({"target": None}, "target"),
        ({"target": {**TARGET, "nationalities": []}}, "target.nationalities"),
        ({"target": {**TARGET, "nationalities": ["Canada"]}}, "target.nationalities[0]"),
        ({"target": {**TARGET, "residences": ["MX", "XK"]}}, "target.residences[1]"),
        ({"target": {**TARGET, "locations": ["MX", "MX"]}}, "target.locations[1]"),
        ({"target": {**TARGET, "locations": "MX"}}, "target.locations"),
        ({"target": {**TARGET, "kind": "company"}}, "target.kind"),
        ({"target": {k: v for k, v in TARGET.items() if k != "kind"}}, "target.kind"),
        ({"target": {**TARGET, "kind": "legal-person"}}, "target.incorporated_in"),
        ({"target": {**TARGET, "kind": "legal-person", "incorporated_in": "ca"}}, "target.incorporated_in"),
        ({"target": {**TARGET, "incorporated_in": "GB"}}, "target.incorporated_in"),
        (
            {"target": {k: v for k, v in TARGET.items() if k != "not_for_third_government"}},
            "target.not_for_third_government",
        ),
        ({"target": {**TARGET, "nationality": "MX"}}, "target.nationality"),
        ({"scope": "all"}, "scope"),
    ],
)
def test_bad_descriptions_name_the_field(change: dict[str, object], field: str) -> None:
    import tomllib

    data = {**tomllib.loads(DESCRIPTION), **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(ConfigError) as info:
        order_from_mapping(data, source="order.toml")
    assert info.value.field == field


@pytest.mark.parametrize("name", ["order.json", "order.dsse"])
def test_envelopes_round_trip_as_json_or_binary(tmp_path: Path, name: str) -> None:
    envelope = pb.Envelope(
        payload_type="t", payload=b"\x00\x01", signatures=[pb.Signature(keyid="k", sig=b"s")]
    )
    write_envelope(envelope, tmp_path / name)
    assert (tmp_path / name).read_bytes().startswith(b"{") == name.endswith(".json")
    assert read_envelope(tmp_path / name) == envelope


def test_reading_something_that_is_not_an_envelope(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"nonsense": 1}')
    with pytest.raises(ConfigError, match="not a signed envelope"):
        read_envelope(tmp_path / "x.json")


def test_sign_then_verify_on_the_command_line(layout: FederationLayout, tmp_path: Path) -> None:
    description = tmp_path / "order.toml"
    description.write_text(DESCRIPTION)
    out = tmp_path / "order.json"
    runner = CliRunner()
    key = str(layout.agencies["us.fbi"].authority_key)
    signed = runner.invoke(app, ["sign", str(description), "--key", key, "--out", str(out)])
    assert signed.exit_code == 0, signed.output
    verified = verify_order(read_envelope(out), Federation.load(layout.federation_file), now=NOW)
    assert verified.authority.id == "us.court.sdny"
    fed = str(layout.federation_file)
    ok = runner.invoke(app, ["verify", str(out), "--federation", fed, "--at", "2026-12-01T00:00:00Z"])
    assert ok.exit_code == 0, ok.output
    assert "valid, signed by" in said(ok)
    late = runner.invoke(app, ["verify", str(out), "--federation", fed, "--at", "2027-03-01T00:00:00Z"])
    assert late.exit_code == 1
    assert "expired" in said(late)


def test_signing_with_a_key_the_federation_does_not_list_fails_verification(
    layout: FederationLayout, tmp_path: Path
) -> None:
    description = tmp_path / "order.toml"
    description.write_text(DESCRIPTION)
    runner = CliRunner()
    wrong = str(layout.agencies["ca.rcmp"].authority_key)  # the Canadian court's key under the US court's id
    runner.invoke(app, ["sign", str(description), "--key", wrong, "--out", str(tmp_path / "o.dsse")])
    result = runner.invoke(
        app, ["verify", str(tmp_path / "o.dsse"), "--federation", str(layout.federation_file)]
    )
    assert result.exit_code == 1
    assert "does not verify" in said(result)


def test_the_target_facts_on_the_command_line(layout: FederationLayout, tmp_path: Path) -> None:
    description = tmp_path / "order.toml"
    description.write_text(BARE)
    out = tmp_path / "order.dsse"
    key = str(layout.agencies["us.fbi"].authority_key)
    options = ["--nationality", "MX", "--nationality", "GB", "--residence", "MX", "--location", "MX"]
    options += ["--target-kind", "legal-person", "--incorporated-in", "GB", "--not-for-third-government"]
    signed = CliRunner().invoke(app, ["sign", str(description), "--key", key, "--out", str(out), *options])
    assert signed.exit_code == 0, signed.output
    order = verify_order(read_envelope(out), Federation.load(layout.federation_file), now=NOW).order
    assert list(order.target.nationalities) == ["MX", "GB"]
    assert (order.target.kind, order.target.incorporated_in) == (pb.LEGAL_PERSON, "GB")
    shown = CliRunner().invoke(app, ["verify", str(out), "--federation", str(layout.federation_file)])
    assert "legal person incorporated in GB; nationalities MX, GB" in said(shown)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([], "target"),
        (["--nationality", "MX"], "--residence, --location, --target-kind"),
        (
            [
                "--nationality",
                "MX",
                "--nationality",
                "MX",
                "--residence",
                "MX",
                "--location",
                "MX",
                "--target-kind",
                "natural-person",
                "--not-for-third-government",
            ],
            "--nationality[1]: 'MX' is listed twice",
        ),
        (
            [
                "--nationality",
                "UK",
                "--residence",
                "MX",
                "--location",
                "MX",
                "--target-kind",
                "natural-person",
                "--not-for-third-government",
            ],
            "--nationality[0]: 'UK' is not an assigned ISO 3166-1 alpha-2 code",
        ),
    ],
)
def test_signing_refuses_missing_or_bad_target_facts(
    layout: FederationLayout, tmp_path: Path, options: list[str], message: str
) -> None:
    description = tmp_path / "order.toml"
    description.write_text(BARE)
    key = str(layout.agencies["us.fbi"].authority_key)
    out = tmp_path / "order.dsse"
    result = CliRunner().invoke(app, ["sign", str(description), "--key", key, "--out", str(out), *options])
    assert result.exit_code == 1
    assert message in said(result)
    assert not out.exists()


def test_target_facts_in_both_places_are_refused(layout: FederationLayout, tmp_path: Path) -> None:
    description = tmp_path / "order.toml"
    description.write_text(DESCRIPTION)
    key = str(layout.agencies["us.fbi"].authority_key)
    options = [
        "--nationality",
        "MX",
        "--residence",
        "MX",
        "--location",
        "MX",
        "--target-kind",
        "natural-person",
    ]
    result = CliRunner().invoke(
        app,
        [
            "sign",
            str(description),
            "--key",
            key,
            "--out",
            str(tmp_path / "o"),
            *options,
            "--not-for-third-government",
        ],
    )
    assert result.exit_code == 1
    assert "both in the description and on the command line" in said(result)
