"""An investigator's profile keeps the federation version it trusts and follows only its signed chain."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import pytest
from signed_demo import write_signed

from comity.core.federation_sign import (
    BadVersion,
    BelowThreshold,
    PinMismatch,
    file_sha256,
)
from comity.core.keys import SigningKey
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.profile import Profile, load_profile

SIGNER = SigningKey.generate("us.fbi/federation-2026")
MALLORY = SigningKey.generate("us.fbi/federation-2026")  # the signer's key id, another key


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    return build_demo_federation(tmp_path_factory.mktemp("demo"), people=3, seed=5)


def _release(demo: DemoFederation, file: Path, version: int, signer: SigningKey) -> bytes:
    text = demo.layout.federation_file.read_text()
    return write_signed(file, text, version=version, role=SIGNER, signer=signer)


def _profile(demo: DemoFederation, tmp_path: Path, **changes: object) -> tuple[Profile, Path]:
    given = demo.directory / f"{tmp_path.name}-federation.toml"  # beside the demo's: relative paths
    profile = replace(load_profile(demo.profiles["us.fbi"]), federation=given)
    return replace(profile, **changes), given  # type: ignore[arg-type]


def test_a_kept_version_is_followed_only_along_its_signed_chain(
    demo: DemoFederation, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "kept.toml"
    profile, given = _profile(demo, tmp_path, federation_state=state)
    v1 = _release(demo, given, 1, SIGNER)
    with caplog.at_level(logging.WARNING, logger="comity.sdk"):
        assert profile.trusted_federation().version == 1
    assert "on first use" in caplog.text and file_sha256(v1) in caplog.text
    assert state.read_bytes() == v1

    _release(demo, given, 2, MALLORY)
    with pytest.raises(BelowThreshold, match=re.escape("0 valid signature(s) by version 1's signing keys")):
        profile.trusted_federation()
    with pytest.raises(BelowThreshold):
        profile.client()  # no client is built on a file it cannot trust
    assert state.read_bytes() == v1

    v2 = _release(demo, given, 2, SIGNER)
    assert profile.trusted_federation().version == 2 and state.read_bytes() == v2
    _release(demo, given, 1, SIGNER)
    with pytest.raises(BadVersion, match="rollback or a replay"):
        profile.trusted_federation()
    assert state.read_bytes() == v2


def test_a_pin_checks_the_first_use_and_alone_fixes_the_version(demo: DemoFederation, tmp_path: Path) -> None:
    profile, given = _profile(demo, tmp_path, federation_sha256="0" * 64)
    v1 = _release(demo, given, 1, SIGNER)
    with pytest.raises(PinMismatch, match="is not the pinned"):
        profile.trusted_federation()
    pinned = replace(profile, federation_sha256=file_sha256(v1))
    assert pinned.trusted_federation().version == 1
    _release(demo, given, 2, SIGNER)  # a pin without a kept version takes no other version
    with pytest.raises(PinMismatch):
        pinned.trusted_federation()
    kept = replace(pinned, federation_state=tmp_path / "kept.toml")
    _release(demo, given, 1, SIGNER)
    assert kept.trusted_federation().version == 1  # the pin checked the first use
    _release(demo, given, 2, SIGNER)
    with pytest.raises(PinMismatch):  # the pin is still given: it decides
        kept.trusted_federation()
    assert replace(kept, federation_sha256="").trusted_federation().version == 2


def test_the_profile_file_names_them(demo: DemoFederation, tmp_path: Path) -> None:
    text = demo.profiles["us.fbi"].read_text()
    edited = demo.profiles["us.fbi"].with_name(f"{tmp_path.name}-profile.toml")
    edited.write_text(
        text.replace(
            "[gateway]\n", '[gateway]\nfederation_state = "kept.toml"\nfederation_sha256 = "ab"\n', 1
        )
    )
    profile = load_profile(edited)
    assert profile.federation_state == edited.parent / "kept.toml" and profile.federation_sha256 == "ab"
