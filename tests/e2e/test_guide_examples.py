"""Every runnable example of the guides runs, as written, against a real demo federation.

A fenced block is runnable when its info string says so: ```` ```bash run ```` and
```` ```python run ```` are executed, in the order of the guide, and ```` ```json file=NAME ````
(any language) is written to ``NAME`` first. Bash blocks run with ``set -euo pipefail``, each in
its own shell, with the variables earlier blocks exported; the Python blocks of a guide share one
interpreter, so a later block may use what an earlier one made (``result``). Each must succeed.

The federation is what ``comity demo --dir DIR`` writes (same people, same seed), with the demo's
orders signed, the gateway and both nodes running as ``comity ... serve`` processes. The
investigators' guide runs in DIR; the operators' guide in an empty folder whose ``node.toml`` is
the Canadian node's configuration with a store of its own; the legal officers' guide (audit.md)
in DIR, after the investigators' hit check has given the log a decision; the policy authors' guide
and the README in empty folders.

The only text replaced is the guides' stand-ins: for the gateway's address,
``gateway.example:50051``, by the running gateway's; and in the operators' guide, for an
installation's folders, ``/etc/comity/`` and ``/var/lib/comity/``, by folders of the test's
(``etc/comity`` holds the federation file, the Canadian node's keys, TLS pair and bundle store,
as an operator installs them).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from comity.core.keys import SigningKey
from comity.sdk.demo.run import emergency_scenario, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMITY = str(BIN / "comity")
GATEWAY_STAND_IN = "gateway.example:50051"
_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, whether it runs, the file it writes."""

    doc: str
    line: int
    language: str
    run: bool
    file: str | None
    text: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line} ({self.language})"


def fenced_blocks(doc: Path) -> list[Block]:
    """The guide's fenced blocks, in order, with their info strings read."""
    blocks: list[Block] = []
    lines = doc.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        start = _FENCE.match(lines[i])
        if not start or not start["info"].strip():
            i += 1
            continue
        indent = len(start["indent"])
        words = start["info"].split()
        body: list[str] = []
        i += 1
        while not lines[i].strip().startswith("```"):
            body.append(lines[i][indent:])
            i += 1
        files = [w.removeprefix("file=") for w in words[1:] if w.startswith("file=")]
        blocks.append(
            Block(
                doc.name,
                i - len(body),
                words[0],
                "run" in words[1:],
                files[0] if files else None,
                "\n".join(body) + "\n",
            )
        )
        i += 1
    return blocks


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_listening(port: int, what: str) -> None:
    deadline = time.monotonic() + 60
    while not _listening(port):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start listening on {port}")
        time.sleep(0.05)


def _wait_witnessed(fed: DemoFederation) -> None:
    """Until every node's witness has cosigned: the gateway reached each node (it started first, so
    its channels may sit in reconnect back-off for a while)."""
    creds = grpc.ssl_channel_credentials(root_certificates=fed.layout.gateway.ca_cert.read_bytes())
    deadline = time.monotonic() + 90
    with grpc.secure_channel(fed.layout.gateway.endpoint, creds) as channel:
        stub = pb_grpc.AuditLogStub(channel)
        for node in fed.layout.nodes:
            while True:
                try:
                    stub.GetCheckpoint(pb.GetCheckpointRequest(cosigned_by=node), timeout=5)
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("COMITY_") or k == "COMITY_TEST_POSTGRES_URL"
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["GRPC_VERBOSITY"] = "NONE"
    env["COLUMNS"] = "200"
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoFederation]:
    """The demo's federation with its orders signed, served by real processes."""
    fed = build_demo_federation(tmp_path_factory.mktemp("guides") / "demo")
    now = datetime.now(UTC)
    for s in (*scenarios(fed), emergency_scenario(fed)):
        if s.order.order_id not in fed.orders:
            fed.sign_order(s.order, now=now)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        servers = [("gateway", fed.gateway_config, _port(fed.layout.gateway.endpoint))]
        servers += [
            ("node", path, _port(fed.layout.nodes[n].endpoint)) for n, path in fed.node_configs.items()
        ]
        for kind, config, port in servers:
            log = (fed.directory / "data" / f"{config.stem}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [COMITY, kind, "serve", "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_env(),
                )
            )
            _wait_listening(port, f"{kind} {config.name}")
        _wait_witnessed(fed)
        yield fed
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class _Python:
    """One interpreter for a guide's Python blocks: each block runs in the namespace of the last."""

    _WORKER = (
        "import sys, traceback\n"
        "namespace = {'__name__': '__main__'}\n"
        "while True:\n"
        "    size = sys.stdin.readline()\n"
        "    if not size: break\n"
        "    code = sys.stdin.read(int(size))\n"
        "    try:\n"
        "        exec(compile(code, 'block', 'exec'), namespace)\n"
        "        status = 'OK'\n"
        "    except BaseException:\n"
        "        traceback.print_exc(file=sys.stdout)\n"
        "        status = 'FAILED'\n"
        "    print('\\n@@' + status, flush=True)\n"
    )

    def __init__(self, cwd: Path) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-u", "-c", self._WORKER],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
        )

    def run(self, code: str) -> tuple[bool, str]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(f"{len(code)}\n{code}")
        self._process.stdin.flush()
        out: list[str] = []
        for line in self._process.stdout:
            if line.startswith("@@"):
                return line.strip() == "@@OK", "".join(out)
            out.append(line)
        return False, "".join(out) + "(the interpreter exited)"

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(30)


def _run_guide(doc: Path, cwd: Path, gateway: str, *, folders: dict[str, Path] | None = None) -> list[Block]:
    stand_ins = {GATEWAY_STAND_IN: gateway, **{k: f"{v}/" for k, v in (folders or {}).items()}}

    def replaced(text: str) -> str:
        for stand_in, value in stand_ins.items():
            text = text.replace(stand_in, value)
        return text

    python = _Python(cwd)
    (cwd / ".guide-env").write_text("", encoding="utf-8")
    ran: list[Block] = []
    try:
        for block in fenced_blocks(doc):
            text = replaced(block.text)
            if block.file is not None:
                target = cwd / replaced(block.file)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            if not block.run:
                continue
            if block.language == "bash":
                # Variables a block exports stay set for the guide's later blocks, as in a terminal.
                script = f"set -euo pipefail\n. ./.guide-env\n{text}\nexport -p > .guide-env\n"
                done = subprocess.run(
                    ["bash", "-c", script],
                    cwd=cwd,
                    env=_env(),
                    capture_output=True,
                    text=True,
                    timeout=180,
                )
                ok, output = done.returncode == 0, done.stdout + done.stderr
            elif block.language == "python":
                ok, output = python.run(text)
            else:
                raise AssertionError(f"{block}: only bash and python blocks run")
            assert ok, f"the example at {block} failed:\n{text}\n--- output:\n{output}"
            ran.append(block)
    finally:
        python.close()
    return ran


def _operator_folder(fed: DemoFederation, folder: Path) -> Path:
    """An empty folder with node.toml: the Canadian node, its keys, and a store of its own.

    The node's keys are copies encrypted under the passphrase the guide exports, as an
    operator's would be.
    """
    folder.mkdir()
    passphrase = re.search(
        r"export COMITY_KEY_PASSPHRASE='([^']*)'", (ROOT / "docs" / "operators.md").read_text()
    )
    assert passphrase is not None
    files = fed.layout.nodes["ca-node"]
    keys = folder / "node-keys"
    keys.mkdir()
    for name, source in (("response", files.response_key), ("witness", files.witness_key)):
        SigningKey.load(source, key_id="ca-node").save(
            keys / f"{name}.key", passphrase=passphrase[1].encode()
        )
    config = fed.node_configs["ca-node"].read_text(encoding="utf-8")
    config = config.replace('"../', f'"{fed.directory}/').replace(
        "sqlite:///../", f"sqlite:///{fed.directory}/"
    )
    config = config.replace(f"sqlite:///{fed.directory}/data/ca-node.db", f"sqlite:///{folder}/records.db")
    config = config.replace(f"{fed.directory}/data/ca-node-witness.db", f"{folder}/witness.db")
    for name, source in (("response", files.response_key), ("witness", files.witness_key)):
        config = config.replace(f'"{source}"', f'"{keys / name}.key"')
    assert str(keys) in config
    (folder / "node.toml").write_text(config, encoding="utf-8")
    return folder


def test_the_investigators_guide_runs(demo: DemoFederation) -> None:
    ran = _run_guide(ROOT / "docs" / "investigators.md", demo.directory, demo.layout.gateway.endpoint)
    languages = [b.language for b in ran]
    assert languages.count("bash") >= 8 and languages.count("python") >= 2, ran
    # The private hit check's precedent holds commitment salts: only its owner reads it.
    assert (demo.directory / "precedent.json").stat().st_mode & 0o777 == 0o600


def test_the_audit_guide_runs(demo: DemoFederation) -> None:
    # One decision of the log's own first, whichever guide runs first.
    guide = fenced_blocks(ROOT / "docs" / "investigators.md")
    hit_check = next(b for b in guide if "--kind hit-check" in b.text)
    done = subprocess.run(
        ["bash", "-c", hit_check.text.replace(GATEWAY_STAND_IN, demo.layout.gateway.endpoint)],
        cwd=demo.directory, env=_env(), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ran = _run_guide(ROOT / "docs" / "audit.md", demo.directory, demo.layout.gateway.endpoint)
    assert len(ran) >= 5, ran
    assert (demo.directory / "audit.jsonl").stat().st_size > 0


def test_the_readme_runs(tmp_path: Path) -> None:
    # Its install step is the one thing left out: the tests run in the installed package.
    ran = _run_guide(ROOT / "README.md", tmp_path, GATEWAY_STAND_IN)
    assert [b.text for b in ran] == ["comity demo\n"], ran


def _installation(fed: DemoFederation, root: Path, keys: Path) -> dict[str, Path]:
    """``/etc/comity`` and ``/var/lib/comity`` as the guide's minimal node config expects them."""
    etc, var = root / "etc" / "comity", root / "var" / "lib" / "comity"
    federation = etc / "federation"
    federation.mkdir(parents=True)
    shutil.copy(fed.layout.federation_file, federation / "federation.toml")
    shutil.copytree(fed.directory / "jwks", federation / "jwks")
    shutil.copytree(fed.directory / "pki", federation / "pki", ignore=shutil.ignore_patterns("*.key"))
    shutil.copytree(keys, etc / "keys")
    (etc / "tls").mkdir()
    shutil.copy(fed.directory / "pki" / "ca" / "ca-node.crt", etc / "tls" / "ca-node.crt")
    shutil.copy(fed.directory / "pki" / "ca" / "ca-node.key", etc / "tls" / "ca-node.key")
    (etc / "bundles").mkdir()
    (var / "ca-node").mkdir(parents=True)
    return {"/etc/comity/": etc, "/var/lib/comity/": var}


def test_the_operators_guide_runs(demo: DemoFederation, tmp_path: Path) -> None:
    folder = _operator_folder(demo, tmp_path / "operator")
    folders = _installation(demo, tmp_path / "root", folder / "node-keys")
    ran = _run_guide(ROOT / "docs" / "operators.md", folder, demo.layout.gateway.endpoint, folders=folders)
    assert len(ran) >= 4, ran
    assert (folder / "rejects.jsonl").stat().st_mode & 0o777 == 0o600
    assert (folders["/etc/comity/"] / "node.toml").exists()
    # The backup section's online copy is a whole SQLite database, not a file cut off mid-write.
    (backup,) = (folder / "backup").glob("ca-node-records-*.db")
    with closing(sqlite3.connect(backup)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_the_policy_guide_writes_tests_and_rolls_out_an_agreement(tmp_path: Path) -> None:
    from comity.core.federation import Federation
    from comity.policy.bundle import PolicyBundle

    ran = _run_guide(ROOT / "docs" / "policy.md", tmp_path, GATEWAY_STAND_IN)
    assert len(ran) >= 4, ran
    bundle = PolicyBundle.load(tmp_path / "new-bundles" / "us-gb-agreement")
    assert (bundle.manifest.version, bundle.manifest.parties) == ("2.0.1", ("US", "GB"))
    agreements = {a.id: a for a in Federation.load(tmp_path / "work" / "federation.toml").agreements}
    assert agreements["us-gb-agreement"].bundle_digest == bundle.digest
    kept = tmp_path / "work" / "bundles" / ("sha256-" + bundle.digest.removeprefix("sha256:"))
    assert PolicyBundle.load(kept).digest == bundle.digest


def test_fenced_blocks_are_read_with_their_markers(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text(
        "text\n```bash run\necho one\n```\n\n  ```json file=a.json\n  {}\n  ```\n```\nplain\n```\n",
        encoding="utf-8",
    )
    blocks = fenced_blocks(doc)
    assert [(b.language, b.run, b.file, b.text) for b in blocks] == [
        ("bash", True, None, "echo one\n"),
        ("json", False, "a.json", "{}\n"),
    ]
