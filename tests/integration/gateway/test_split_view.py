"""A gateway holding the log key cannot get a fork past the witnesses (real nodes, TLS, SQLite, PostgreSQL).

The attacker runs its own witnessing loops over logs it signs with the real log key and shows
each witness what it likes. Split views stall the quorum (suspected fork, alerted after the
bound), witnesses refuse the other branch (proven fork), and the offline verifier fails.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from comity.audit import events
from comity.audit.errors import LogVerificationError
from comity.audit.log import TransparencyLog
from comity.audit.quorum import Quorum
from comity.audit.store import LogStore
from comity.audit.verify import verify_log
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.core.serving import ServerHandle
from comity.core.tls import node_channel_credentials
from comity.gateway.config import load_gateway_config
from comity.gateway.ledger import Ledger
from comity.gateway.routing import NodeEndpoint, NodeRouter
from comity.gateway.server import RunningGateway, start_gateway
from comity.gateway.witness_client import WitnessClient
from comity.gateway.witnessing import WitnessingLoop
from comity.nodes.config import load_node_config
from comity.nodes.server import start_node
from comity.sdk.demo.setup import DemoFederation, build_demo_federation

pytestmark = pytest.mark.asyncio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setting:
    fed: DemoFederation
    federation: Federation
    log_key: SigningKey
    router: NodeRouter
    url: str
    prefixes: list[str]
    logs: list[TransparencyLog]

    async def log(self) -> tuple[Ledger, str]:
        """A new log database (signed with the real log key) and its table prefix."""
        prefix = f"t{uuid.uuid4().hex[:12]}_"
        self.prefixes.append(prefix)
        log = await TransparencyLog.open(
            self.url,
            origin=self.federation.gateway.log.origin,
            key=self.log_key,
            witnesses=self.federation.witness_keys(),
            table_prefix=prefix,
        )
        self.logs.append(log)
        return Ledger(log), prefix

    def loop(self, ledger: Ledger, witness_ids: list[str], clock: Clock) -> WitnessingLoop:
        """A witnessing loop that shows ``ledger``'s log to these witnesses only."""
        witnesses = [WitnessClient(w, self.router.witness_stub(w), 5.0) for w in witness_ids]
        return WitnessingLoop(
            ledger,
            witnesses,
            quorum=Quorum.of_federation(self.federation),
            interval=1.0,
            max_delay=30.0,
            clock=clock,
        )


_AT = datetime.now(UTC)


def _entry(i: int, tag: str = "") -> bytes:
    at = _AT  # one instant: the same entry in two databases is the same bytes
    return events.failed_event(
        query_id=f"q{i}{tag}", query_digest=b"\0" * 32, node="us-node", reason="T", at=at
    )


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def setting(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setting]:
    """The demo federation's gateway (its own loop not started) and both nodes; logs on either store."""
    url = f"sqlite:///{tmp_path / 'attacker.db'}"
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    fed = build_demo_federation(tmp_path / "fed", people=5, seed=11)
    gateway_config = load_gateway_config(fed.gateway_config)
    gateway: RunningGateway = await start_gateway(gateway_config, start_witnessing=False)
    nodes: list[ServerHandle] = [await start_node(load_node_config(p)) for p in fed.node_configs.values()]
    federation = Federation.load(fed.layout.federation_file)
    router = NodeRouter(
        {
            n.id: NodeEndpoint(
                n.id,
                n.endpoint,
                node_channel_credentials(n, gateway_config.client_cert, gateway_config.client_key),
                server_name=n.host,
            )
            for n in federation.nodes()
        }
    )
    log_key = SigningKey.load(gateway_config.log_key, key_id=federation.gateway.log.origin)
    s = Setting(fed, federation, log_key, router, url, [], [])
    try:
        yield s
    finally:
        for log in s.logs:
            await log.close()
        for prefix in s.prefixes:
            store = LogStore.open(url, table_prefix=prefix, create=False)
            store.drop()
            store.close()
        await router.close()
        for handle in nodes:
            await handle.stop(0)
        await gateway.handle.stop(0)


def _quorum(s: Setting) -> Quorum:
    return Quorum.of_federation(s.federation)


async def test_a_split_view_never_reaches_a_quorum_and_is_reported(setting: Setting) -> None:
    s, clock = setting, Clock()
    real, real_prefix = await s.log()
    fork, _ = await s.log()
    for i in range(4):  # a shared history, cosigned by both witnesses
        await real.record(_entry(i))
        await fork.record(_entry(i))
    assert (await s.loop(real, ["us-node", "ca-node"], clock).round()).quorum_size == 4
    await real.record(_entry(4))
    await fork.record(_entry(4, "-rewritten"))  # the Canadian's disclosure, rewritten
    to_us, to_ca = s.loop(real, ["us-node"], clock), s.loop(fork, ["ca-node"], clock)
    seen_us, seen_ca = await to_us.round(), await to_ca.round()
    # Each witness cosigned the branch it was shown; neither branch has a quorum.
    assert (seen_us.log_size, seen_us.quorum_size, seen_us.missing) == (5, 4, {"CA": 1})
    assert (seen_ca.log_size, seen_ca.quorum_size, seen_ca.missing) == (5, None, {"US": 1})
    assert not seen_us.overdue
    clock.now += 31  # past max_delay: the stalled quorum is alerted as a suspected fork
    assert (await to_us.round()).overdue
    # Shown the real branch, the Canadian witness refuses it, and what it cosigned contradicts it.
    both = await s.loop(real, ["us-node", "ca-node"], clock).round()
    assert both.quorum_size == 4
    assert any("ca-node refused size 5" in f for f in both.forks)
    assert any("ca-node cosigned another tree of size 5" in f for f in both.forks)
    # A legal officer reading the real log later finds the quorum stalled past the bound.
    later = datetime.now(UTC) + timedelta(minutes=5)
    with pytest.raises(LogVerificationError, match="not covered by a witness quorum"):
        await asyncio.to_thread(
            verify_log,
            s.url,
            verifier_key=real.log.verifier,
            table_prefix=real_prefix,
            quorum=_quorum(s),
            now=later,
        )


async def test_rewriting_cosigned_history_is_caught(setting: Setting, tmp_path: Path) -> None:
    s, clock = setting, Clock()
    real, real_prefix = await s.log()
    for i in range(5):
        await real.record(_entry(i))
    assert (await s.loop(real, ["us-node", "ca-node"], clock).round()).quorum_size == 5
    state = tmp_path / "officer.state"
    quorum = _quorum(s)
    report = await asyncio.to_thread(
        verify_log,
        s.url,
        verifier_key=real.log.verifier,
        table_prefix=real_prefix,
        quorum=quorum,
        state=state,
    )
    assert (report.quorum_size, report.pending_entries) == (5, 0)
    # The key holder rewrites entry 2 and re-signs every checkpoint in a new database.
    rewritten, prefix = await s.log()
    for i in range(5):
        await rewritten.record(_entry(i, "-rewritten" if i == 2 else ""))
    status = await s.loop(rewritten, ["us-node", "ca-node"], clock).round()
    assert status.quorum_size is None and len(status.forks) >= 2  # both witnesses refuse it
    with pytest.raises(LogVerificationError, match="history was rewritten"):
        await asyncio.to_thread(
            verify_log, s.url, verifier_key=real.log.verifier, table_prefix=prefix, quorum=quorum, state=state
        )
    later = datetime.now(UTC) + timedelta(minutes=5)  # a first-time verifier, once the bound has passed
    with pytest.raises(LogVerificationError, match="no checkpoint carries one"):
        await asyncio.to_thread(
            verify_log, s.url, verifier_key=real.log.verifier, table_prefix=prefix, quorum=quorum, now=later
        )


async def test_deleted_cosignatures_are_caught_by_a_verifier_with_state(
    setting: Setting, tmp_path: Path
) -> None:
    s, clock = setting, Clock()
    real, prefix = await s.log()
    for i in range(3):
        await real.record(_entry(i))
    await s.loop(real, ["us-node", "ca-node"], clock).round()
    state = tmp_path / "officer.state"
    quorum = _quorum(s)
    await asyncio.to_thread(
        verify_log, s.url, verifier_key=real.log.verifier, table_prefix=prefix, quorum=quorum, state=state
    )
    store = real.log.store
    with store._writer.begin() as conn:  # the database's owner deletes one witness's cosignature
        table = store.tables.cosignatures
        conn.execute(table.delete().where(table.c.tree_size == 3, table.c.witness == "ca-node"))
    with pytest.raises(LogVerificationError, match="cosignature\\(s\\) of ca-node have disappeared"):
        await asyncio.to_thread(
            verify_log, s.url, verifier_key=real.log.verifier, table_prefix=prefix, quorum=quorum, state=state
        )
