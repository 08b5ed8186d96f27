"""A node config naming its own record types: the real `comity` loads, counts and checks with them.

The record types are the example file of docs/operators.md ("Record types of your own").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from comity.sdk.demo.setup import DemoFederation, build_demo_federation

_COMITY = Path(sys.executable).with_name("comity")
_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operators.md"
_EXAMPLE = re.compile(r"```toml file=record-types\.toml\n(.*?)```", re.DOTALL)


def _comity(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COMITY_KEY_PASSPHRASE"}
    return subprocess.run(
        [str(_COMITY), *map(str, args)], capture_output=True, text=True, check=False, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Canadian node's config with a store of its own and the guide's record types."""
    fed: DemoFederation = build_demo_federation(Path(tmp_path_factory.mktemp("types")), people=5, seed=3)
    source = fed.node_configs["ca-node"]
    example = _EXAMPLE.search(_GUIDE.read_text(encoding="utf-8"))
    assert example is not None, "docs/operators.md lost its record-types.toml example"
    (source.parent / "record-types.toml").write_text(example[1], encoding="utf-8")
    text = source.read_text(encoding="utf-8")
    text = text.replace("ca-node.db", "vehicles.db").replace("ca-node-witness.db", "vehicles-witness.db")
    text = text.replace("[store]\n", '[store]\nschema = "record-types.toml"\n')
    path = source.with_name("vehicles.toml")
    path.write_text(text, encoding="utf-8")
    return path


def _record(record_type: str, fields: dict[str, str]) -> str:
    return json.dumps({"record_id": f"{record_type}-1", "record_type": record_type, "fields": fields})


def test_records_of_the_configured_types_load_and_are_counted(config: Path, tmp_path: Path) -> None:
    records = tmp_path / "vehicles.jsonl"
    fields = {"vin": "1HGCM82633A004352", "owner_name": "Alex Martin",
              "registered_at": "2025-03-01T09:00:00Z", "owner_nationality": "CA",
              "owner_residence": "CA"}  # fmt: skip
    records.write_text(_record("vehicle_registration", fields) + "\n", encoding="utf-8")
    done = _comity("node", "load", "--config", config, records)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loaded 1 record(s)" in done.stdout
    stats = _comity("node", "stats", "--config", config)
    assert stats.returncode == 0, stats.stderr
    assert "vehicle_registration" in stats.stdout


def test_node_check_lists_the_configured_record_types(config: Path) -> None:
    done = _comity("node", "check", "--config", config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"record types from \S*record-types\.toml: vehicle_registration\n", done.stdout), (
        done.stdout
    )


def test_a_built_in_type_the_file_does_not_declare_is_refused(config: Path, tmp_path: Path) -> None:
    records = tmp_path / "subscribers.jsonl"
    fields = {"account_id": "CA-ACC-1", "provider": "Northern Telecom", "full_name": "Sam Roy",
              "created_at": "2025-05-01T08:00:00Z", "subject_nationality": "CA",
              "subject_residence": "CA"}  # fmt: skip
    records.write_text(_record("subscriber_account", fields) + "\n", encoding="utf-8")
    done = _comity("node", "load", "--config", config, records)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    out = " ".join((done.stdout + done.stderr).split())
    assert "'subscriber_account' is not a record type of the node's schema" in out, out
    assert "schema (vehicle_registration)" in out


def test_a_bad_schema_file_is_named_without_a_traceback(config: Path) -> None:
    schema = config.with_name("record-types.toml")
    good = schema.read_text(encoding="utf-8")
    try:
        schema.write_text(good.replace('type = "country"', 'type = "nation"', 1), encoding="utf-8")
        done = _comity("node", "check", "--config", config)
    finally:
        schema.write_text(good, encoding="utf-8")
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert "Traceback" not in out
    assert "record-types.toml" in out and "nation" in out, out
