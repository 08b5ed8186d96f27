"""`comity config check FILE`: tells the kind of file, validates it, explains it, names bad fields."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from comity.core.bootstrap import init_federation
from comity.core.errors import ConfigError
from comity.sdk.cli.config_cmd import config_app, explain_config

ROOT = Path(__file__).resolve().parents[3]
NODE = ROOT / "deploy" / "config" / "node.toml"
GATEWAY = ROOT / "deploy" / "config" / "gateway.toml"

PROFILE = """
[investigator]
id = "us.fbi/agent-1"
agency = "us.fbi"
key = "keys/agent.key"

[gateway]
address = "127.0.0.1:7443"
ca = "pki/gateway-ca.crt"
federation = "federation.toml"
"""


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COMITY_AUDIT_URL", "COMITY_REPLAY_URL", "COMITY_NODE_STORE_URL", "COMITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _run(path: Path) -> tuple[int, str]:
    app = typer.Typer()
    app.add_typer(config_app, name="config")
    result = CliRunner().invoke(app, ["config", "check", str(path)], terminal_width=200)
    # Normalise whitespace: rich wraps long lines of an error at the terminal width.
    return result.exit_code, " ".join(result.output.split())


def _settings(path: Path) -> dict[str, str]:
    return {s.name: s.value for s in explain_config(path).settings}


def test_gateway_config_is_recognised_and_explained() -> None:
    report = explain_config(GATEWAY)
    assert report.kind == "gateway"
    values = {s.name: s for s in report.settings}
    assert values["gateway.listen"].value == "0.0.0.0:7443"
    assert values["audit.url"].note == "COMITY_AUDIT_URL overrides it"
    assert "file not found" in values["keys.decision_key"].note
    code, output = _run(GATEWAY)
    assert code == 0
    assert "is a valid gateway configuration" in output
    assert "transparency log" in output


def test_node_config_is_recognised_and_explained() -> None:
    report = explain_config(NODE)
    assert report.kind == "node"
    assert _settings(NODE)["node.id"] == "ca-node"
    notes = {s.name: s.note for s in report.settings}
    assert notes["witness.state"] == ""  # made by the node on its first start
    code, output = _run(NODE)
    assert code == 0 and "is a valid data node configuration" in output


def test_profile_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(PROFILE, encoding="utf-8")
    report = explain_config(path)
    assert report.kind == "profile"
    assert _settings(path)["investigator.id"] == "us.fbi/agent-1"
    assert _settings(path)["investigator.token_file"] == "(not set)"
    code, output = _run(path)
    assert code == 0 and "is a valid investigator profile" in output


def test_federation_file_is_recognised(tmp_path: Path) -> None:
    layout = init_federation(tmp_path, gateway_port=7443, countries={"US": 7101, "CA": 7102}, name="us-ca")
    settings = _settings(layout.federation_file)
    assert settings["name"] == "us-ca"
    assert "ca-node at 127.0.0.1:7102" in settings["members[ca.rcmp]"]
    code, output = _run(layout.federation_file)
    assert code == 0 and "is a valid federation file" in output


def test_error_names_the_field_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(NODE.read_text(encoding="utf-8").replace("max_records = 500", "max_records = 0"))
    with pytest.raises(ConfigError) as err:
        explain_config(path)
    assert err.value.field == "limits.max_records"
    code, output = _run(path)
    assert code == 1
    assert "limits.max_records" in output and "at least 1" in output


def test_misspelt_key_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(GATEWAY.read_text(encoding="utf-8").replace("audience =", "audiense ="))
    code, output = _run(path)
    assert code == 1 and "gateway.audiense" in output and "unknown setting" in output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[other]\nx = 1\n", "cannot tell what this file configures"),
        ("[node\n", "not valid TOML"),
    ],
)
def test_unreadable_or_unknown_files_exit_1(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.toml"
    path.write_text(text, encoding="utf-8")
    code, output = _run(path)
    assert code == 1 and message in output
    code, output = _run(tmp_path / "missing.toml")
    assert code == 1 and "file not found" in output


def test_database_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMITY_AUDIT_URL", "postgresql://comity:s3cret-pw@db.example:5432/audit")
    setting = next(s for s in explain_config(GATEWAY).settings if s.name == "audit.url")
    assert setting.value == "postgresql://comity:***@db.example:5432/audit"
    assert setting.note == "from COMITY_AUDIT_URL"
    code, output = _run(GATEWAY)
    assert code == 0 and "s3cret-pw" not in output
