"""Every key kind rotates by overlap, as docs/operators.md says, with the log and receipts still verifying.

The demo federation runs on loopback (gateway and both nodes, real TLS, SQLite). The US node's
response and witness keys, the gateway's decision key and the log key are rotated in the two
steps of the guide: (1) release a federation file listing old and new keys with overlapping
periods and restart every component with it; (2) switch each key holder to its new private key
and restart it. Queries, witnessing, ``comity audit verify`` and receipts work across it; a
cosignature under a retired key dated after its retirement, a forged or a tampered one, and a
checkpoint the old log key signs beyond its range are refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from federation_text import START, format2
from typer.testing import CliRunner

from comity.audit.checkpoint import Checkpoint, sign_checkpoint
from comity.audit.cosignature import CosignatureSigner, CosignatureVerifier
from comity.audit.errors import UnverifiedNote
from comity.audit.note import Ed25519Signer, Note, NoteSignature
from comity.audit.quorum_checkpoint import ForgedCosignature, open_quorum_checkpoint
from comity.audit.rfc6962 import EMPTY_ROOT
from comity.core.dsse import pae
from comity.core.errors import Unauthenticated
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.sdk.cli.main import app
from comity.sdk.demo.run import RunningFederation, Scenario, run_scenario, running_federation, scenarios
from comity.sdk.demo.setup import DemoFederation, build_demo_federation
from comity.sdk.profile import load_profile
from comity.sdk.receipts import export_receipt
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio

runner = CliRunner()


def _rotate_dated(text: str, table: str, old: str, new: str, *, start: datetime, end: datetime) -> str:
    """operators.md: give the old entry an end, add the new key starting before that end."""
    entry = f'key = "{old}"\nvalid_from = {START}\n'
    assert text.count(entry) == 1
    return text.replace(
        entry,
        f'{entry}valid_until = {_z(end)}\n\n[[{table}]]\nkey = "{new}"\nvalid_from = {_z(start)}\n',
    )


def _rotate_log(text: str, old: str, new: str, *, from_size: int, until_size: int) -> str:
    """operators.md: ``until_size`` on the old log key, ``from_size`` (at most that) on the new one."""
    entry = f'[[gateway.log.keys]]\nkey = "{old}"\n'
    assert text.count(entry) == 1
    return text.replace(
        entry,
        f'{entry}until_size = {until_size}\n\n[[gateway.log.keys]]\nkey = "{new}"\nfrom_size = {from_size}\n',
    )


def _z(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _cli(args: list[str]) -> tuple[int, str]:
    result = await asyncio.to_thread(runner.invoke, app, args, env={"COLUMNS": "250"})
    return result.exit_code, result.output


async def _new_key(name: str, out: Path) -> str:
    code, output = await _cli(["keys", "new", name, "--out", str(out)])
    assert code == 0, output
    found = re.search(r"public key\s+(ed25519:\S+)", output)
    assert found, output
    return found.group(1)


def _scenario(fed: DemoFederation) -> Scenario:
    return next(s for s in scenarios(fed) if s.title.startswith("RCMP fetches"))


async def _quorum_covers(running: RunningFederation, size: int, *, limit: float = 30.0) -> None:
    loop = running.gateway.witnessing
    assert loop is not None
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        if (loop.status.quorum_size or 0) >= size:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no quorum covering size {size}: {loop.status.detail()}")


async def _query_and_receipt(running: RunningFederation, out: Path) -> pb.Receipt:
    """RCMP fetches from the US node; the receipt, refreshed to a quorum checkpoint, saved to ``out``."""
    fed = running.federation
    async with load_profile(fed.profiles["ca.rcmp"]).async_client() as client:
        outcome = await run_scenario(client, fed, _scenario(fed))
    assert outcome.result is not None, outcome.error  # the SDK verified the node's statement
    receipt = outcome.result.receipt
    await _quorum_covers(running, max(e.inclusion.tree_size for e in receipt.entries))
    export_receipt(receipt, out)
    gateway = ["--gateway", fed.layout.gateway.endpoint, "--ca", str(fed.layout.gateway.ca_cert)]
    code, output = await _cli(
        ["audit", "receipt", "refresh", str(out), "-f", str(fed.layout.federation_file), *gateway]
    )
    assert code == 0 and "receipt refreshed" in output, output
    return receipt


def _set_key(config: Path, setting: str, path: Path) -> None:
    """Point a config's ``[keys]`` setting at another key file (the switch of step 2)."""
    text = config.read_text()
    line = re.search(rf"\n{setting} = .*\n", text)
    assert line
    config.write_text(text.replace(line.group(0), f'\n{setting} = "{path}"\n'))


async def test_every_key_kind_rotates_with_the_log_and_receipts_still_verifying(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=5, seed=21)
    federation_file = fed.layout.federation_file
    federation_file.write_text(format2(federation_file.read_text()))
    v1 = federation_file.with_name("federation-v1.toml")  # kept beside it: its paths are relative
    state = tmp_path / "officer.state"
    verify_db = ["audit", "verify", "--db", str(fed.audit_db), "--state", str(state)]

    async with running_federation(fed) as running:
        before = await _query_and_receipt(running, tmp_path / "before.json")
        size = running.gateway.ledger.log.newest_signed()[0]
    shutil.copy(federation_file, v1)
    code, out = await _cli([*verify_db, "--federation", str(federation_file)])
    assert code == 0 and "witness quorum on checkpoint" in out, out

    # Step 1: a new federation file lists old and new keys of every kind, with an overlap.
    now = datetime.now(UTC)
    start, end = now - timedelta(minutes=1), now + timedelta(days=7)
    current = Federation.load(v1)
    us, gw = current.node("us-node"), current.gateway
    keys = fed.directory / "keys-2027"
    keys.mkdir()
    new = {
        "response": await _new_key("us-node", keys / "us-response.key"),
        "witness": await _new_key("us-node", keys / "us-witness.key"),
        "decision": await _new_key("gateway", keys / "decision.key"),
        "log": await _new_key(gw.log.origin, keys / "log.key"),
    }
    text = v1.read_text()
    text = _rotate_dated(
        text, "members.nodes.response_keys", us.response_key.to_text(), new["response"], start=start, end=end
    )
    text = _rotate_dated(
        text, "members.nodes.witness_keys", us.witness_key.to_text(), new["witness"], start=start, end=end
    )
    text = _rotate_dated(
        text, "gateway.decision_keys", gw.decision_key.to_text(), new["decision"], start=start, end=end
    )
    text = _rotate_log(text, gw.log.key.to_text(), new["log"], from_size=size, until_size=size + 1000)
    federation_file.write_text(text.replace("version = 1\n", "version = 2\n"))
    v2 = Federation.load(federation_file)
    assert len(v2.node("us-node").witness_keys.at(now)) == 2

    async with running_federation(fed) as running:  # every component restarted, old private keys
        await _query_and_receipt(running, tmp_path / "overlap.json")

    # Step 2: each key holder switches to its new private key and restarts.
    _set_key(fed.node_configs["us-node"], "response_key", keys / "us-response.key")
    _set_key(fed.node_configs["us-node"], "witness_key", keys / "us-witness.key")
    _set_key(fed.gateway_config, "decision_key", keys / "decision.key")
    _set_key(fed.gateway_config, "log_key", keys / "log.key")
    async with running_federation(fed) as running:
        after = await _query_and_receipt(running, tmp_path / "after.json")
        ledger = running.gateway.ledger
        await _quorum_covers(running, ledger.log.newest_signed()[0])
        newest, lines = await ledger.latest_checkpoint()
        assert (
            Note.parse(newest).signatures[0].key_id
            == Ed25519Signer(
                gw.log.origin, SigningKey.load(keys / "log.key", key_id="log").private_key
            ).verifier.key_id
        )
        us_line = next(NoteSignature.parse_line(x.rstrip("\n")) for x in lines if x.startswith("— us-node "))
        new_witness = SigningKey.load(keys / "us-witness.key", key_id="us-node").private_key
        assert us_line.key_id == CosignatureVerifier("us-node", new_witness.public_key()).key_id
        await _refused_cosignatures(running, old_witness=fed.layout.nodes["us-node"].witness_key, end=end)
        await _refused_old_log_key(running, old_log=fed.layout.gateway.log_key, until=size + 1000)
    # The answer after the switch is signed by the new response key, not the old one.
    statement = after.node_statement
    message = pae(statement.payload_type, statement.payload)
    SigningKey.load(keys / "us-response.key", key_id="us-node").verifying_key.verify(
        statement.signatures[0].sig, message
    )
    with pytest.raises(Unauthenticated):
        us.response_key.verify(statement.signatures[0].sig, message)
    assert before.node_statement.signatures[0].keyid == "us-node"

    # The log verifies across the rotation with the new file, remembering what was verified before.
    # The state holds version 1, which names no [signing] keys: no file can follow it by itself.
    code, out = await _cli([*verify_db, "--federation", str(federation_file)])
    said = " ".join(out.split())
    assert code == 1 and "names no [signing] keys, so no later version can be trusted" in said, out
    # The officer compares the new file's digest with the one published and pins it.
    pin = hashlib.sha256(federation_file.read_bytes()).hexdigest()
    code, out = await _cli([*verify_db, "--federation", str(federation_file), "--federation-sha256", pin])
    assert code == 0 and "witness quorum on checkpoint" in out, out
    # The old file knows no key for the new checkpoints: it cannot vouch for them.
    code, out = await _cli(["audit", "verify", "--db", str(fed.audit_db), "--federation", str(v1)])
    assert code == 1, out

    # Receipts: the one issued before verifies with the old file and the new; the new one with the new.
    for receipt, federation, ok in [
        ("before.json", v1, True),
        ("before.json", federation_file, True),
        ("overlap.json", federation_file, True),
        ("after.json", federation_file, True),
        ("after.json", v1, False),
    ]:
        code, out = await _cli(["audit", "verify-receipt", str(tmp_path / receipt), "-f", str(federation)])
        assert (code == 0 and "witness quorum reached" in out) == ok, (receipt, federation.name, out)


async def _refused_cosignatures(running: RunningFederation, *, old_witness: Path, end: datetime) -> None:
    """A retired key's line dated after its end, a stranger's key, a flipped byte: none is stored."""
    ledger = running.gateway.ledger
    federation = Federation.load(running.federation.layout.federation_file)
    note, lines = await ledger.latest_checkpoint()
    size = Checkpoint.from_text(Note.parse(note).text).size
    text = Note.parse(note).text
    old = CosignatureSigner("us-node", SigningKey.load(old_witness, key_id="us-node").private_key)
    retired = old.cosign(text, timestamp=int((end + timedelta(seconds=1)).timestamp()))
    stranger = CosignatureSigner("us-node", SigningKey.generate("us-node").private_key)
    forged = stranger.cosign(text, timestamp=int(datetime.now(UTC).timestamp()))
    genuine = next(NoteSignature.parse_line(x.rstrip("\n")) for x in lines if x.startswith("— us-node "))
    flipped = bytearray(genuine.signature)
    flipped[-1] ^= 1
    tampered = NoteSignature(genuine.name, genuine.key_id, bytes(flipped))
    for line, why in [
        (retired, "by no key the federation file lists for it at that time"),
        (forged, "by no key the federation file lists for it at that time"),
        (tampered, "does not verify"),
    ]:
        with pytest.raises(UnverifiedNote, match=why):
            await ledger.log.add_cosignature(size, line)
        others = [x for x in lines if not x.startswith("— us-node ")]
        with pytest.raises(ForgedCosignature, match=why):
            open_quorum_checkpoint(note, [*others, line.line()], federation)
    assert await ledger.log.cosignatures(size) == lines  # nothing was added


async def _refused_old_log_key(running: RunningFederation, *, old_log: Path, until: int) -> None:
    """A checkpoint the retired log key signs beyond its range: witnesses and verifiers refuse it."""
    federation = Federation.load(running.federation.layout.federation_file)
    origin = federation.gateway.log.origin
    signer = Ed25519Signer(origin, SigningKey.load(old_log, key_id=origin).private_key)
    beyond = sign_checkpoint(Checkpoint(origin, until, EMPTY_ROOT), signer)
    with pytest.raises(UnverifiedNote, match="carries no signature by a trusted key"):
        open_quorum_checkpoint(beyond, [], federation)
    stub = running.gateway.router.witness_stub("us-node")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.AddCheckpoint(
            pb.AddCheckpointRequest(old_size=0, checkpoint=pb.Checkpoint(signed_note=beyond)), timeout=5
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "the witness refused the checkpoint" in (refused.value.details() or "")
