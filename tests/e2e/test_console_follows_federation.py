"""The console follows its federation file while it runs: a signed next version is taken (keys,
quorum, who may sign in, receipts), a forged one is refused and the version in use stays."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from signed_demo import write_signed

from comity.core.errors import ConfigError
from comity.core.keys import SigningKey
from comity.core.tokens import TokenError
from comity.sdk.console.auth import Sessions
from comity.sdk.console.mirror import Mirror, held_federation
from comity.sdk.console.trust import ConsoleTrust, TrustFollower
from comity.sdk.demo.setup import DemoFederation, build_demo_federation

SIGNER = SigningKey.generate("us.fbi/federation-2026")
MALLORY = SigningKey.generate("us.fbi/federation-2026")  # the signer's key id, another key


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    return build_demo_federation(tmp_path_factory.mktemp("demo"), people=3, seed=7)


def _publish(file: Path, text: str, version: int, signer: SigningKey) -> None:
    write_signed(file, text, version=version, role=SIGNER, signer=signer)


def _without_rcmp_officer(text: str) -> str:
    cut = re.sub(r'\[\[members.legal_officers\]\]\nid = "ca.rcmp/[^"]*"\n', "", text)
    assert cut != text
    return cut


def test_a_signed_next_version_is_taken_and_a_forged_one_refused(
    demo: DemoFederation, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = demo.layout.federation_file.read_text()
    given = demo.directory / f"{tmp_path.name}-federation.toml"  # beside the demo's: relative paths
    _publish(given, text, 1, SIGNER)
    mirror = Mirror(tmp_path / "console.db")
    trust = ConsoleTrust.load(given, held=held_federation(mirror.path))
    assert trust.followed is not None
    mirror.keep_federation(trust.followed.data)
    follower = TrustFollower(given, trust, keep=mirror.keep_federation)
    sessions = Sessions(trust.federation, audience="comity-gateway")
    taken: list[int | None] = []
    follower.on_change(
        lambda new: (taken.append(new.federation.version), sessions.use_federation(new.federation))
    )
    token = demo.officer_tokens["ca.rcmp"].read_text()
    key, _ = sessions.sign_in(token)
    assert not follower.check()  # nothing changed

    # A version signed under the signer's key id by another key: refused, version 1 stays.
    _publish(given, _without_rcmp_officer(text), 2, MALLORY)
    with caplog.at_level(logging.ERROR, logger="comity.sdk.console"):
        assert not follower.check()
    assert follower.refused is not None and "FEDERATION_BELOW_THRESHOLD" in follower.refused
    assert "ALERT: federation file" in caplog.text and "still verifying under version 1" in caplog.text
    assert follower.current.federation.version == 1 and taken == []
    assert sessions.get(key) is not None

    # The same change, signed by the kept version's key: taken, kept in the mirror, the officer it
    # no longer lists is signed out and cannot sign in again.
    _publish(given, _without_rcmp_officer(text), 2, SIGNER)
    assert follower.check()
    assert taken == [2] and follower.refused is None and follower.current.federation.version == 2
    assert held_federation(mirror.path) == given.read_bytes()
    assert sessions.get(key) is None
    with pytest.raises(TokenError):
        sessions.sign_in(token)

    # Version 1 again (its own valid envelope): a rollback, refused.
    _publish(given, text, 1, SIGNER)
    assert not follower.check()
    assert follower.refused is not None and "rollback" in follower.refused
    assert follower.current.federation.version == 2


def test_a_mirror_whose_kept_version_cannot_be_read_is_not_a_first_use(tmp_path: Path) -> None:
    damaged = tmp_path / "console.db"
    damaged.write_bytes(b"not a database, but not empty either" * 100)
    with pytest.raises(ConfigError, match="cannot read the federation version kept in the mirror"):
        held_federation(damaged)
    assert held_federation(tmp_path / "absent.db") is None
