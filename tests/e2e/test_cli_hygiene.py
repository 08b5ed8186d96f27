"""The real `comity` entry point on bad input: a message, never a traceback; piped output uncut."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_status import rpc_status

from comity.core import errors
from comity.core.keys import KeyFileError, SigningKey
from comity.core.rpc import guard_unary
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

_COMITY = Path(sys.executable).with_name("comity")


def _comity(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_COMITY), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_a_negative_record_limit_is_an_explained_usage_error() -> None:
    done = _comity("query", "-p", "p.toml", "-n", "ca-node", "-s", "email:a@example.org", "-o", "x.order",
                   "--max-records", "-5")  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert "--max-records" in done.stderr


def test_a_local_file_error_is_not_labelled_with_a_grpc_status(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-config.toml"
    done = _comity("config", "check", str(missing))
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Traceback" not in out
    assert "FAILED_PRECONDITION" not in out and "NOT_FOUND" not in out
    assert "error:" in out


def test_piped_output_is_not_wrapped_at_80_columns(tmp_path: Path) -> None:
    # A long path in an error message stays on one line when the output goes to a pipe.
    missing = tmp_path / ("a-rather-long-folder-name-" * 4) / "no-such-config.toml"
    done = _comity("config", "check", str(missing), env={"COLUMNS": ""})
    assert str(missing) in (done.stdout + done.stderr).replace("\r", "")


def test_an_unencrypted_key_given_a_passphrase_says_so(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    SigningKey.generate("us.fbi/agent-1").save(path)
    with pytest.raises(KeyFileError, match="not encrypted, but a passphrase was given"):
        SigningKey.load(path, key_id="us.fbi/agent-1", passphrase=b"secret")


def test_the_cli_says_a_key_is_not_encrypted_when_given_a_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    SigningKey.generate("us.fbi/agent-1").save(path)
    done = _comity("keys", "show", str(path), "--name", "us.fbi/agent-1", "--passphrase-env", "PASS",
                   env={"PASS": "secret"})  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    said = " ".join(done.stderr.split())
    assert "is not encrypted, but a passphrase was given" in said and "drop --passphrase-env" in said, said


class _Refusing(pb_grpc.GatewayServicer):
    @guard_unary
    async def Submit(self, request: pb.SubmitRequest, context: Any) -> pb.QueryResult:
        raise errors.PermissionDenied(
            "refused",
            violations=[errors.RuleViolationInfo("SERIOUS_CRIME", "the offence is not serious", "basis")],
            hint="choose an offence with a maximum penalty of at least 3 years",
        )


async def test_googles_rpc_status_reads_a_refusal_with_a_hint() -> None:
    server = grpc.aio.server()
    pb_grpc.add_GatewayServicer_to_server(_Refusing(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await pb_grpc.GatewayStub(channel).Submit(pb.SubmitRequest(), timeout=5)
    finally:
        await server.stop(None)
    # from_call raised ValueError when the Status message and the call's message differed.
    status = rpc_status.from_call(caught.value)
    assert status is not None
    assert status.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert "hint:" in status.message


def test_the_version_is_printed_by_the_entry_point() -> None:
    done = _comity("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("comity ") and done.stdout.split()[1][0].isdigit(), done.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("audit", "show", "--since", "lastweek"), "'lastweek' is not an ISO 8601 date or time"),
        (("query", "-p", "p.toml", "-n", "ca-node", "-s", "email:a@example.org", "-o", "x.order",
          "--max-records", "-5"), "--max-records"),
    ],
)  # fmt: skip
def test_a_piped_usage_error_is_one_line_without_a_traceback(args: tuple[str, ...], says: str) -> None:
    done = _comity(*args, env={"COLUMNS": ""})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    error = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and says in error[0], done.stderr
    assert "│" not in done.stderr and "╭" not in done.stderr


def test_piped_help_is_not_wrapped_at_80_columns() -> None:
    done = _comity("--help", env={"COLUMNS": ""})
    assert done.returncode == 0
    described = [line for line in done.stdout.splitlines() if line.strip().startswith("--show-completion")]
    assert len(described) == 1 and len(described[0]) > 80, done.stdout
