"""The officer's token for background sync: renewed near expiry from a file or command, or refused."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from comity.sdk.console.sync import OfficerToken, TokenUnavailable

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _token(expires: datetime) -> str:
    # Only the expiry is read here (the gateway verifies the token): any signature will do.
    return jwt.encode({"exp": int(expires.timestamp()), "sub": "x"}, "k" * 32, algorithm="HS256")


def test_a_token_file_is_read_again_when_the_token_nears_expiry(tmp_path: Path) -> None:
    file = tmp_path / "t.jwt"
    first, second = _token(NOW + timedelta(seconds=30)), _token(NOW + timedelta(hours=1))
    file.write_text(first + "\n")
    token = OfficerToken(file=file, now=lambda: NOW)
    with pytest.raises(TokenUnavailable, match=f"expired at .*: put a fresh one in {file}"):
        token()  # 30 s left is too little for a sync round
    file.write_text(second)
    assert token() == second
    file.write_text(_token(NOW + timedelta(hours=2)))
    assert token() == second  # still fresh: not read again


def test_a_token_command_is_run_for_a_fresh_token(tmp_path: Path) -> None:
    script = tmp_path / "issue.py"
    script.write_text(f"print({_token(NOW + timedelta(hours=1))!r})")
    token = OfficerToken(
        token=_token(NOW - timedelta(minutes=1)), command=f"{sys.executable} {script}", now=lambda: NOW
    )
    assert token() == _token(NOW + timedelta(hours=1))
    broken = OfficerToken(command=f"{sys.executable} -c 'raise SystemExit(3)'", now=lambda: NOW)
    with pytest.raises(TokenUnavailable, match=r"the token command .* failed"):
        broken()


def test_without_a_way_to_renew_it_says_how_to_go_on() -> None:
    token = OfficerToken(token=_token(NOW - timedelta(hours=1)), now=lambda: NOW)
    with pytest.raises(TokenUnavailable, match="restart the console with a fresh one"):
        token()
