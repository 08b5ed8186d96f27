"""A user's type checker sees the SDK's types, and the CLI says which version is installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from comity.sdk.cli.main import app

_USER_SCRIPT = """\
from comity.sdk import AsyncClient, Client, QuerySpec, RecordView, Result


def run(client: Client, spec: QuerySpec) -> Result:
    return client.query(spec)


async def run_async(client: AsyncClient, spec: QuerySpec) -> list[RecordView]:
    result = await client.query(spec)
    return list(result.records)
"""


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "user.py"
    script.write_text(source)
    # Run from the user's folder, so the project's own mypy configuration plays no part.
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_users_script_passes_mypy_strict_against_the_installed_sdk(tmp_path: Path) -> None:
    done = _mypy(tmp_path, _USER_SCRIPT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_users_type_error_against_the_sdk_is_reported(tmp_path: Path) -> None:
    # The SDK's types are really seen: a wrong use of them is an error, not Any.
    done = _mypy(tmp_path, _USER_SCRIPT + "\n\ndef wrong(client: Client) -> int:\n    return client\n")
    assert done.returncode == 1
    assert 'Incompatible return value type (got "Client", expected "int")' in done.stdout
    assert "missing library stubs" not in done.stdout


def test_comity_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("comity ")
