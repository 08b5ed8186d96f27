"""Configuration files: typed reads, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from comity.core.errors import ConfigError
from comity.gateway.config import load_gateway_config
from comity.nodes.config import load_node_config

NODE = """
[node]
id = "ca-node"
listen = "127.0.0.1:0"
federation = "federation.toml"
[store]
url = "sqlite:///data/ca.db"
[keys]
response_key = "keys/r.pem"
witness_key = "keys/w.pem"
[tls]
cert = "pki/n.crt"
key = "pki/n.key"
[policy]
bundle = "ca-inbound"
[witness]
state = "w.db"
[limits]
max_records = 50
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_node_config_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    cfg = load_node_config(_write(tmp_path, NODE))
    assert cfg.node_id == "ca-node"
    assert cfg.federation == tmp_path / "federation.toml"
    assert cfg.store_url == f"sqlite:///{tmp_path}/data/ca.db"
    assert cfg.max_records == 50


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda t: t.replace('id = "ca-node"\n', ""), "node.id"),
        (lambda t: t.replace("max_records = 50", 'max_records = "many"'), "limits.max_records"),
        (lambda t: t.replace("max_records = 50", "max_records = 0"), "limits.max_records"),
        (lambda t: t.replace("max_records = 50", "max_recrods = 50"), "limits.max_recrods"),
        (lambda t: t.replace('url = "sqlite:///data/ca.db"', 'url = "mysql://x"'), "store.url"),
        (lambda t: t.replace('[witness]\nstate = "w.db"\n', ""), "witness"),
    ],
)
def test_bad_node_config_names_the_field(tmp_path: Path, edit: object, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_node_config(_write(tmp_path, edit(NODE)))  # type: ignore[operator]
    assert info.value.field == field
    assert str(tmp_path) in info.value.message


def test_invalid_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_node_config(_write(tmp_path, "[node\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_gateway_config(tmp_path / "absent.toml")


def test_environment_overrides_the_store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMITY_NODE_STORE_URL", "postgresql://postgres@127.0.0.1/test")
    assert load_node_config(_write(tmp_path, NODE)).store_url == "postgresql://postgres@127.0.0.1/test"
