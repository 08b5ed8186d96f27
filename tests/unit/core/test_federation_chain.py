"""A verifier's kept federation version: taken again as it is, or by a pin, or by its signed next version."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from comity.core.bootstrap import FederationLayout, init_federation
from comity.core.errors import ConfigError
from comity.core.federation_chain import Change, follow
from comity.core.federation_sign import (
    BadVersion,
    BelowThreshold,
    EditedAfterSigning,
    Expired,
    PinMismatch,
    UnsignedPredecessor,
    file_sha256,
    sign_federation_file,
)
from comity.core.keys import SigningKey

Format2 = Callable[..., str]  # the conftest's format2 fixture
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
A, B, C = (SigningKey.generate(f"{agency}/federation-2026") for agency in ("us.fbi", "ca.rcmp", "us.doj"))
MALLORY = SigningKey.generate("us.fbi/federation-2026")  # the same key id, another key


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(
        tmp_path_factory.mktemp("fed"), gateway_port=7443, countries={"US": 7101, "CA": 7102}, format=1
    )


@pytest.fixture
def release(layout: FederationLayout, format2: Format2, tmp_path: Path) -> Callable[..., Path]:
    """Write version ``v`` of the federation as the file a verifier is given; returns its path."""
    base = layout.federation_file.read_text()

    def write(
        version: int,
        *,
        signed_by: tuple[SigningKey, ...] = (),
        role: bool = True,
        expires: str = "2027-06-01T00:00:00Z",
        extra: str = "",
    ) -> Path:
        text = format2(base, header=f"version = {version}\nexpires = {expires}\n") + extra
        if role:
            text += "\n[signing]\nthreshold = 2\n" + "".join(
                f'[[signing.keys]]\nid = "{k.key_id}"\nkey = "{k.verifying_key.to_text()}"\n'
                for k in (A, B, C)
            )
        path = layout.directory / f"{tmp_path.name}-federation.toml"
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".dsse").unlink(missing_ok=True)
        path.write_text(text, encoding="utf-8")
        for key in signed_by:
            sign_federation_file(path, key)
        return path

    return write


def test_first_use_takes_the_file_as_it_is_and_says_so(release: Callable[..., Path]) -> None:
    path = release(1)
    first = follow(path, None, now=NOW)
    assert (first.change, first.federation.version, first.data) == (Change.FIRST_USE, 1, path.read_bytes())
    assert first.sha256 == file_sha256(path.read_bytes())
    again = follow(path, first.data, now=NOW)
    assert (again.change, again.federation.version) == (Change.HELD, 1)


def test_a_pin_decides_whatever_is_held(release: Callable[..., Path]) -> None:
    held = release(1).read_bytes()
    path = release(2)  # unsigned: nothing but a pin can take it
    pinned = follow(path, held, pin=file_sha256(path.read_bytes()), now=NOW)
    assert (pinned.change, pinned.federation.version) == (Change.PINNED, 2)
    with pytest.raises(PinMismatch, match="is not the pinned"):
        follow(path, None, pin=file_sha256(held), now=NOW)


def test_the_next_version_signed_by_the_held_threshold_is_taken(release: Callable[..., Path]) -> None:
    held = release(1).read_bytes()
    path = release(2, signed_by=(A, C))
    taken = follow(path, held, now=NOW)
    assert (taken.change, taken.federation.version, taken.data) == (Change.NEXT, 2, path.read_bytes())


def test_a_swapped_file_is_refused_and_nothing_is_taken(release: Callable[..., Path]) -> None:
    held = release(1).read_bytes()
    # Forged: signed by one trusted key and by another key under a trusted key's id.
    with pytest.raises(BelowThreshold, match="1 valid signature"):
        follow(release(2, signed_by=(B, MALLORY)), held, now=NOW)
    # Unsigned: no envelope at all.
    with pytest.raises(ConfigError, match="cannot read envelope"):
        follow(release(2), held, now=NOW)
    # Edited after signing: the signatures cover other bytes.
    path = release(2, signed_by=(A, B))
    path.write_text(path.read_text() + "\n# edited\n", encoding="utf-8")
    with pytest.raises(EditedAfterSigning):
        follow(path, held, now=NOW)


def test_rollback_replay_jump_and_expiry_are_refused(release: Callable[..., Path]) -> None:
    v2 = release(2, signed_by=(A, B)).read_bytes()
    with pytest.raises(BadVersion, match="rollback or a replay"):
        follow(release(1, signed_by=(A, B)), v2, now=NOW)
    with pytest.raises(BadVersion, match="must be 3"):
        follow(release(4, signed_by=(A, B)), v2, now=NOW)
    with pytest.raises(Expired):
        follow(release(3, signed_by=(A, B), expires="2026-11-01T00:00:00Z"), v2, now=NOW)


def test_a_held_version_without_signing_keys_is_followed_by_a_pin_only(release: Callable[..., Path]) -> None:
    held = release(1, role=False).read_bytes()
    with pytest.raises(UnsignedPredecessor, match="no later version can be trusted by its signatures"):
        follow(release(2, signed_by=(A, B)), held, now=NOW)
