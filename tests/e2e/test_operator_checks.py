"""Operators' smoke tests: `comity node check`, `comity gateway check` and `comity config check`
refuse what would make every query fail at serve time (keys and certificates the federation does
not list, a bundle whose own tests fail)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from comity.core.keys import SigningKey
from comity.core.pki import CertificateAuthority
from comity.sdk.demo.setup import DemoFederation, build_demo_federation

_COMITY = Path(sys.executable).with_name("comity")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    return build_demo_federation(Path(tmp_path_factory.mktemp("ops")), people=3, seed=3)


def _comity(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        [str(_COMITY), *args], capture_output=True, text=True, check=False, env=dict(os.environ), timeout=120
    )
    out = done.stdout + done.stderr
    assert "Traceback" not in out
    return done.returncode, " ".join(out.split())


def _variant(config: Path, old: str, new: str) -> Path:
    text = config.read_text()
    assert old in text
    variant = config.with_name(f"variant-{config.name}")
    variant.write_text(text.replace(old, new))
    return variant


def test_node_check_passes_on_a_node_the_federation_lists(demo: DemoFederation) -> None:
    code, out = _comity("node", "check", "-c", str(demo.node_configs["ca-node"]))
    assert code == 0, out
    assert "keys are the ones the federation lists" in out
    assert "TLS certificate pinned" in out


def test_node_check_refuses_a_response_key_the_federation_does_not_list(demo: DemoFederation) -> None:
    stray = demo.directory / "keys" / "stray.key"
    SigningKey.generate("ca-node").save(stray)
    config = _variant(demo.node_configs["ca-node"], "../keys/ca-node/response.key", "../keys/stray.key")
    code, out = _comity("node", "check", "-c", str(config))
    assert code == 1
    assert "is not the key the federation lists for ca-node" in out
    assert "keys.response_key" in out


def test_node_check_refuses_a_certificate_the_federation_does_not_pin(demo: DemoFederation) -> None:
    ca = CertificateAuthority.create("Stray CA", now=datetime.now(UTC))
    issued = ca.issue_server("ca-node", names=["127.0.0.1"], now=datetime.now(UTC))
    issued.save(demo.directory / "pki" / "stray.crt", demo.directory / "pki" / "stray.key")
    config = _variant(demo.node_configs["ca-node"], "../pki/ca/ca-node.crt", "../pki/stray.crt")
    code, out = _comity("node", "check", "-c", str(config))
    assert code == 1
    assert "the federation pins" in out


def test_gateway_check_passes_and_refuses_a_stray_decision_key(demo: DemoFederation) -> None:
    code, out = _comity("gateway", "check", "-c", str(demo.gateway_config))
    assert code == 0, out
    assert "passes its tests" in out
    stray = demo.directory / "keys" / "stray-decision.key"
    SigningKey.generate("gateway").save(stray)
    config = _variant(demo.gateway_config, "../keys/gateway/decision.key", "../keys/stray-decision.key")
    code, out = _comity("gateway", "check", "-c", str(config))
    assert code == 1
    assert "decision key" in out and "is not the key the federation lists" in out


def test_config_check_refuses_a_bundle_whose_own_tests_fail(demo: DemoFederation, tmp_path: Path) -> None:
    from comity.policy.bundle import bundle_path

    broken = tmp_path / "ca-inbound-broken"
    shutil.copytree(bundle_path("ca-inbound"), broken)
    tests = broken / "tests.toml"
    text = tests.read_text()
    assert "allowed = true" in text
    tests.write_text(text.replace("allowed = true", "allowed = false", 1))
    config = _variant(demo.node_configs["ca-node"], "[policy]\n", f'[policy]\nbundle = "{broken}"\n')
    code, out = _comity("config", "check", str(config))
    assert code == 1, out
