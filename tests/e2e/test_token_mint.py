"""`comity token mint`: a token the gateway accepts, and a refusal for what it would refuse."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from comity.core.bootstrap import FederationLayout, init_federation
from comity.core.federation import Federation
from comity.core.tokens import TokenVerifier

_COMITY = Path(sys.executable).with_name("comity")


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(tmp_path_factory.mktemp("fed"), gateway_port=1, countries={"US": 2, "CA": 3})


def _mint(layout: FederationLayout, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_COMITY), "token", "mint", "--federation", str(layout.directory / "federation.toml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _fbi(layout: FederationLayout, subject: str, *more: str) -> subprocess.CompletedProcess[str]:
    fbi = layout.agencies["us.fbi"]
    return _mint(layout, "--issuer", fbi.issuer, "--key", str(fbi.issuer_key), "--subject", subject, *more)


def test_a_minted_token_passes_the_gateways_checks(layout: FederationLayout, tmp_path: Path) -> None:
    fbi = layout.agencies["us.fbi"]
    out = tmp_path / "agent.jwt"
    done = _fbi(layout, fbi.investigator, "--ttl", "30", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    verifier = TokenVerifier(Federation.load(layout.directory / "federation.toml"), audience=fbi.audience)
    verified = verifier.verify(out.read_text().strip(), now=datetime.now(UTC))
    assert verified.subject == fbi.investigator and verified.agency == "us.fbi"
    assert (verified.expires_at - verified.issued_at).total_seconds() == 30 * 60
    officer = _fbi(layout, fbi.legal_officer)
    assert officer.returncode == 0, officer.stderr
    assert (
        verifier.verify_legal_officer(officer.stdout.strip(), now=datetime.now(UTC)).subject
        == fbi.legal_officer
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unregistered", "not a registered"),
        ("other agency", "registered with ca.rcmp"),
        ("foreign key", "is not a key of issuer"),
        ("untrusted issuer", "not trusted by the federation"),
        ("too long", "--ttl must be between 1 and 720 minutes"),
    ],
)
def test_mint_refuses_what_the_gateway_would(layout: FederationLayout, case: str, expected: str) -> None:
    fbi, rcmp = layout.agencies["us.fbi"], layout.agencies["ca.rcmp"]
    if case == "unregistered":
        done = _fbi(layout, "us.fbi/nobody")
    elif case == "other agency":
        done = _fbi(layout, rcmp.investigator)
    elif case == "foreign key":
        done = _mint(
            layout, "--issuer", fbi.issuer, "--key", str(rcmp.issuer_key), "--subject", fbi.investigator
        )
    elif case == "untrusted issuer":
        done = _mint(
            layout, "--issuer", "https://id.evil.example", "--key", str(fbi.issuer_key), "--subject", "x"
        )
    else:
        done = _fbi(layout, fbi.investigator, "--ttl", "721")
    assert done.returncode == 1, done.stdout
    assert expected in done.stderr.replace("\n", " ")
    assert "Traceback" not in done.stderr and not done.stdout.strip()
