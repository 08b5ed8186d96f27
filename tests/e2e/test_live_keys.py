"""Keys that verify other parties' signatures follow the federation file while the servers run.

The demo federation runs as real processes (gateway and both nodes) on a signed version 1, and
nothing is restarted. Version 2 rotates the US node's witness key (the old one ends now) while
the node still cosigns with it: its cosignatures stop counting, so the checkpoints after the
reload reach no quorum, while the checkpoints it cosigned before still verify under the key
history. Version 3 rotates the Canadian node's response key the same way: its next answer,
signed with the old key, is refused with ``NODE_ANSWER_KEY`` and nothing is released, while
the US node's answers are accepted as before. Version 4 rotates the gateway's decision key:
the nodes refuse a decision signed with the old one. Version 5 pins another gateway client
certificate: the nodes refuse the running gateway's calls at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from served import wait_for
from signed_demo import SignedDemo, signed_demo, zulu

from comity.audit.errors import UnverifiedNote
from comity.audit.events import FailedEvent, decode_event
from comity.audit.note import Note, NoteSignature
from comity.audit.quorum import Quorum
from comity.core.errors import ComityError
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.sdk.demo.run import Outcome, run_scenario, scenario_spec, scenarios
from comity.sdk.profile import load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedDemo]:
    with signed_demo(
        Path(tmp_path_factory.mktemp("live-keys")),
        seed=29,
        gateway_extra="\n[witnessing]\ninterval_seconds = 0.2\n",
    ) as running:
        yield running


async def _query(demo: SignedDemo, agency: str, title: str) -> Outcome:
    s = next(x for x in scenarios(demo.fed) if x.title.startswith(title))
    async with load_profile(demo.fed.profiles[agency]).async_client() as client:
        return await run_scenario(client, demo.fed, s)


async def _answered(demo: SignedDemo, agency: str, title: str) -> None:
    for _ in range(60):  # a node's channel back to the gateway may still be in back-off
        outcome = await _query(demo, agency, title)
        if outcome.result is not None:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{title!r} not answered: {outcome.error}")


def _rotated(text: str, table: str, old: str, *, at: datetime) -> str:
    """End ``old`` in ``table`` at ``at`` and list a fresh key from a minute before (operators.md)."""
    entry = f'[[{table}]]\nkey = "{old}"\n'
    assert text.count(entry) == 1
    new = SigningKey.generate("new").verifying_key.to_text()
    return text.replace(
        entry,
        f'{entry}valid_until = {zulu(at)}\n\n[[{table}]]\nkey = "{new}"\n'
        f"valid_from = {zulu(at - timedelta(minutes=1))}\n",
    )


async def _past(when: datetime) -> None:
    """Sleep until ``when`` has passed (and a cosignature verified just before is written)."""
    await asyncio.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()) + 0.5)


def _cosigned(db: Path) -> dict[str, int]:
    """Witness → the largest tree size it has a stored cosignature on."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT witness, max(tree_size) FROM audit_cosignatures GROUP BY witness")
        return {witness: int(size) for witness, size in rows}


def _events(db: Path) -> list[object]:
    """Every entry of the log, decoded."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [
            decode_event(bytes(data))
            for (data,) in conn.execute("SELECT data FROM audit_entries ORDER BY idx")
        ]


def _newest_quorum(db: Path) -> int:
    """The largest tree size both nodes' witnesses cosigned (the demo's quorum: one per country)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT max(tree_size) FROM (SELECT tree_size FROM audit_cosignatures "
            "GROUP BY tree_size HAVING count(DISTINCT witness) = 2)"
        ).fetchone()
    return int(row[0] or 0)


def _lines(db: Path, size: int) -> tuple[str, dict[str, str]]:
    """The checkpoint text of ``size`` and its stored cosignature lines by witness."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (note,) = conn.execute("SELECT note FROM audit_checkpoints WHERE tree_size = ?", (size,)).fetchone()
        lines = dict(
            conn.execute("SELECT witness, line FROM audit_cosignatures WHERE tree_size = ?", (size,))
        )
    return Note.parse(bytes(note)).text, lines


async def test_rotated_witness_and_response_keys_stop_counting_at_once(demo: SignedDemo) -> None:
    db = demo.fed.audit_db
    await _answered(demo, "ca.rcmp", "RCMP fetches")  # US node answers
    await _answered(demo, "us.fbi", "FBI asks")  # Canadian node answers
    v1 = Federation.load(demo.fed.layout.federation_file)
    old_witness = v1.node("us-node").witness_key.to_text()
    old_response = v1.node("ca-node").response_key.to_text()
    await asyncio.to_thread(wait_for, lambda: _newest_quorum(db) > 0, "a first quorum checkpoint")

    # Version 2: the US node's witness key is rotated; the node goes on cosigning with the old one.
    # The old key ends a moment after publication (as an operator dates it: never before the
    # file is out), so every line stored until then verifies under the history.
    rotation = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    v2 = _rotated(demo.original, "members.nodes.witness_keys", old_witness, at=rotation)
    demo.publish(demo.version(v2, 2), signer=demo.signer)
    for name in demo.logs:
        await asyncio.to_thread(demo.wait_said, name, "now version 2", 15)
    await asyncio.to_thread(demo.wait_said, "us-node", f"this node's witness key ends at {zulu(rotation)}")
    await _past(rotation)
    before = _newest_quorum(db)
    us_before = _cosigned(db)["us-node"]
    await _answered(demo, "ca.rcmp", "RCMP fetches")  # new entries, so new checkpoints
    await asyncio.to_thread(demo.wait_said, "gateway", "cosignature from us-node refused")
    ca_moved = lambda: _cosigned(db)["ca-node"] > max(before, us_before)  # noqa: E731
    await asyncio.to_thread(wait_for, ca_moved, "the Canadian witness cosigning the new entries")
    await asyncio.sleep(1.0)  # several witnessing rounds
    assert _cosigned(db)["us-node"] == us_before, "a cosignature under the rotated key was stored"
    assert _newest_quorum(db) == before, "a checkpoint after the rotation reached a quorum"

    # What was cosigned before still verifies under the history; the same line is no longer accepted.
    quorum = Quorum.of_federation(Federation.load(demo.fed.layout.federation_file))
    text, lines = _lines(db, us_before)
    line = NoteSignature.parse_line(lines["us-node"].rstrip("\n"))
    assert quorum.verify(text, line) == "us-node"
    with pytest.raises(UnverifiedNote):
        quorum.verify(text, line, now=datetime.now(UTC))

    # Version 3: the Canadian node's response key is rotated; the node still signs with the old one.
    rotation = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    v3 = _rotated(v2, "members.nodes.response_keys", old_response, at=rotation)
    demo.publish(demo.version(v3, 3), signer=demo.signer)
    await asyncio.to_thread(demo.wait_said, "gateway", "now version 3", 15)
    await asyncio.to_thread(demo.wait_said, "ca-node", f"this node's response key ends at {zulu(rotation)}")
    await _past(rotation)
    outcome = await _query(demo, "us.fbi", "FBI asks")
    assert outcome.error is not None, "an answer signed with the rotated response key was accepted"
    assert outcome.error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert outcome.error.check_codes == ["NODE_ANSWER_KEY"], outcome.error.message
    assert "ca-node" in outcome.error.message and "nothing was released" in outcome.error.message
    # Streamed, the node's signed summary is refused the same way.
    fetch = next(x for x in scenarios(demo.fed) if x.title.startswith("FBI asks"))
    async with load_profile(demo.fed.profiles["us.fbi"]).async_client() as client:
        with pytest.raises(ComityError) as streamed:
            async for _ in client.stream(scenario_spec(demo.fed, fetch)):
                pass
    assert streamed.value.check_codes == ["NODE_ANSWER_KEY"], streamed.value.message
    failures = [e for e in _events(db) if isinstance(e, FailedEvent) and e.node == "ca-node"]
    assert [f.reason for f in failures] == ["NODE_ANSWER_KEY"] * 2  # not a witness out of step
    await _answered(demo, "ca.rcmp", "RCMP fetches")  # the US node's answers are accepted as before

    # Version 4 rotates the gateway's decision key: the nodes refuse decisions under the old one.
    rotation = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    old_decision = v1.gateway.decision_key.to_text()
    v4 = _rotated(v3, "gateway.decision_keys", old_decision, at=rotation)
    demo.publish(demo.version(v4, 4), signer=demo.signer)
    for node in demo.fed.node_configs:
        await asyncio.to_thread(demo.wait_said, node, "now version 4", 15)
    await asyncio.to_thread(
        demo.wait_said, "gateway", f"this gateway's decision key ends at {zulu(rotation)}"
    )
    await _past(rotation)
    outcome = await _query(demo, "ca.rcmp", "RCMP fetches")
    assert outcome.error is not None, "a node accepted a decision signed with the rotated decision key"
    assert outcome.error.code == grpc.StatusCode.UNAUTHENTICATED
    assert outcome.error.check_codes == ["GATEWAY_DECISION_SIGNATURE"], outcome.error.message

    # Version 5 pins another gateway client certificate: the nodes refuse the running gateway's.
    pin = v1.gateway.client_cert_sha256
    v5 = v4.replace(f'client_cert_sha256 = "{pin}"', f'client_cert_sha256 = "{"ab" * 32}"')
    assert v5 != v4
    demo.publish(demo.version(v5, 5), signer=demo.signer)
    for node in demo.fed.node_configs:
        await asyncio.to_thread(demo.wait_said, node, "now version 5", 15)
    outcome = await _query(demo, "ca.rcmp", "RCMP fetches")
    assert outcome.error is not None, "a node still accepted the unpinned gateway certificate"
    assert outcome.error.code == grpc.StatusCode.UNAUTHENTICATED
    assert "not the one the federation pins" in outcome.error.message, outcome.error.message
    for name in demo.logs:
        assert "Traceback" not in demo.said(name), demo.said(name)
