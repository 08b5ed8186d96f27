"""The guides' examples for agreements and agencies, run as written (the real `comity` entry point)."""

from __future__ import annotations

import json
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

from comity.core.federation import Federation
from comity.policy.bundle import PolicyBundle
from tests.e2e.three_countries import third_country_bundles

DOCS = Path(__file__).resolve().parents[2] / "docs"
MARK = "<!-- run by tests/e2e/test_guide_agreements.py -->"
_COMITY = Path(sys.executable).parent / "comity"


def _blocks(guide: str) -> list[list[str]]:
    """The commands of every bash block marked for this test in ``guide``."""
    text = (DOCS / guide).read_text(encoding="utf-8")
    blocks = re.findall(re.escape(MARK) + r"\n```bash\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, f"{guide} has no block marked for this test"
    return [[line for line in block.splitlines() if line.strip()] for block in blocks]


def _run(line: str, cwd: Path) -> str:
    args = shlex.split(line)
    assert args[0] == "comity"
    done = subprocess.run(
        [str(_COMITY), *args[1:]], cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, (line, done.stdout, done.stderr)
    return done.stdout


def test_the_policy_guide_makes_a_federation_with_an_agreement_per_pair_that_has_bundles(
    tmp_path: Path,
) -> None:
    bundles = third_country_bundles(tmp_path / "my-bundles")
    (block,) = _blocks("policy.md")
    outputs = [_run(line, tmp_path) for line in block]
    assert bundles["us-gb-agreement"].digest in outputs[0]
    fed = Federation.load(tmp_path / "work" / "federation.toml")
    agreements = {a.id: a for a in fed.agreements}
    assert sorted(agreements) == ["us-ca-agreement", "us-gb-agreement"]
    gb = agreements["us-gb-agreement"]
    assert gb.bundle_digest == bundles["us-gb-agreement"].digest
    assert dict(gb.inbound or {}) == {
        "US": bundles["us-inbound-gb"].digest,
        "GB": bundles["gb-inbound"].digest,
    }
    assert fed.agreement_for("CA", "GB", gb.effective_from) is None
    for bundle in bundles.values():  # kept by digest, where the components' [policy] store finds them
        kept = tmp_path / "work" / "bundles" / ("sha256-" + bundle.digest.removeprefix("sha256:"))
        assert PolicyBundle.load(kept).digest == bundle.digest


def test_the_operators_guide_makes_an_identity_providers_key_set(tmp_path: Path) -> None:
    (block,) = _blocks("operators.md")
    for line in block:
        _run(line, tmp_path)
    key = tmp_path / "keys" / "gb.nca" / "issuer.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    jwks = json.loads((tmp_path / "jwks" / "gb.nca.json").read_text())
    (jwk,) = jwks["keys"]
    assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519") and "d" not in jwk
    # Run again, it refuses to replace the key.
    again = subprocess.run(
        [str(_COMITY), *shlex.split(block[0])[1:]], cwd=tmp_path, capture_output=True, text=True
    )
    assert again.returncode == 1 and "already exists" in again.stderr + again.stdout


def test_the_federation_guide_adds_a_member_signed_by_the_current_signers(tmp_path: Path) -> None:
    bundles = third_country_bundles(tmp_path / "my-bundles")
    (block,) = _blocks("federation.md")
    outputs = [" ".join(_run(line, tmp_path).split()) for line in block]
    assert "agreement us-gb-agreement: US – GB" in outputs[1]
    assert "trusted: federation 'federation' version 2" in outputs[-1]
    fed = Federation.load(tmp_path / "work" / "federation.v2.toml")
    assert [m.country for m in fed.members] == ["US", "CA", "GB"]
    (gb,) = (a for a in fed.agreements if "GB" in a.parties)
    assert gb.bundle_digest == bundles["us-gb-agreement"].digest
    assert fed.signing is not None and "gb.nca/federation" in fed.signing.keys
