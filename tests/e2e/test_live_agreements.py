"""Agreements follow the federation file while the gateway and the nodes run (real processes).

On the demo federation (signed version 1, the US–Canada agreement), nothing is restarted:

- version 2 ends the agreement a moment after it is published: from then on a query between
  the two countries is refused with ``NO_AGREEMENT`` by the gateway;
- version 3 adds a new agreement between them under a gateway bundle the gateway has not
  loaded yet. While that bundle is not in the gateway's store, the gateway refuses the whole
  version with an alert and goes on serving version 2 (the nodes, which have its inbound
  bundles, take it); once the bundle is kept there and the file is written again, the gateway
  takes version 3 and queries are decided under the new agreement and its bundle.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from signed_demo import SignedDemo, signed_demo, zulu

from comity.audit.events import DecisionEvent, decode_event
from comity.policy.bundle import PolicyBundle, bundle_path
from comity.policy.bundle_store import BundleStore
from comity.sdk.demo.run import Outcome, run_scenario, scenarios
from comity.sdk.profile import load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedDemo]:
    with signed_demo(Path(tmp_path_factory.mktemp("live-agreements")), seed=31) as running:
        yield running


async def _query(demo: SignedDemo, agency: str, title: str) -> Outcome:
    s = next(x for x in scenarios(demo.fed) if x.title.startswith(title))
    async with load_profile(demo.fed.profiles[agency]).async_client() as client:
        return await run_scenario(client, demo.fed, s)


async def _answered(demo: SignedDemo, agency: str, title: str) -> Outcome:
    for _ in range(60):  # a node's channel back to the gateway may still be in back-off
        outcome = await _query(demo, agency, title)
        if outcome.result is not None:
            return outcome
        await asyncio.sleep(0.2)
    raise AssertionError(f"{title!r} not answered: {outcome.error}")


def _block(text: str) -> str:
    """The demo's one ``[[agreements]]`` block (it ends the file)."""
    start = text.index("[[agreements]]\n")
    return text[start:]


def _new_bundle(root: Path) -> PolicyBundle:
    """The shipped agreement bundle with one more line in its README: same rules, a new digest."""
    folder = root / "us-ca-agreement-2027"
    shutil.copytree(bundle_path("us-ca-agreement"), folder, ignore=shutil.ignore_patterns("__pycache__"))
    readme = folder / "README.md"
    readme.write_text(readme.read_text() + "\nRenewed for 2027.\n")
    return PolicyBundle.load(folder)


async def _past(when: datetime) -> None:
    await asyncio.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()) + 0.3)


async def test_an_ended_agreement_refuses_at_once_and_a_new_one_decides_under_its_bundle(
    demo: SignedDemo, tmp_path: Path
) -> None:
    await _answered(demo, "us.fbi", "FBI asks")
    await _answered(demo, "ca.rcmp", "RCMP fetches")
    original = _block(demo.original)
    assert "effective_until" not in original

    # Version 2: the agreement ends a moment after publication.
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    ended = original.replace("effective_from = ", f"effective_until = {zulu(end)}\neffective_from = ", 1)
    v2 = demo.original.replace(original, ended)
    demo.publish(demo.version(v2, 2), signer=demo.signer)
    for name in demo.logs:
        await asyncio.to_thread(demo.wait_said, name, "now version 2", 15)
    await _past(end)
    for agency, title in (("us.fbi", "FBI asks"), ("ca.rcmp", "RCMP fetches")):
        outcome = await _query(demo, agency, title)
        assert outcome.error is not None, f"{title!r} was answered after the agreement ended"
        assert outcome.error.code == grpc.StatusCode.PERMISSION_DENIED
        assert outcome.error.check_codes == ["NO_AGREEMENT"], outcome.error.message

    # Version 3: a new agreement from now on, under a gateway bundle not in the gateway's store yet.
    bundle = _new_bundle(tmp_path)
    old_digest = original.split('bundle_digest = "', 1)[1].split('"', 1)[0]
    renewed = (
        original.replace('id = "us-ca-agreement"', 'id = "us-ca-agreement-2027"')
        .replace(old_digest, bundle.digest)
        .replace("effective_from = 2026-01-01T00:00:00Z", f"effective_from = {zulu(end)}")
    )
    assert renewed.count(bundle.digest) == 1 and "us-ca-agreement-2027" in renewed
    v3 = demo.version(v2 + "\n" + renewed, 3)
    demo.publish(v3, signer=demo.signer)
    await asyncio.to_thread(demo.wait_said, "gateway", "(version 3 cannot be put in use)")
    assert bundle.digest in demo.said("gateway")
    for node in demo.fed.node_configs:  # the nodes have every inbound bundle it names
        await asyncio.to_thread(demo.wait_said, node, "now version 3", 15)
    outcome = await _query(demo, "us.fbi", "FBI asks")
    assert outcome.error is not None and outcome.error.check_codes == ["NO_AGREEMENT"], outcome.error
    assert "now version 3" not in demo.said("gateway")

    # The operator keeps the bundle in the gateway's store and writes the file again.
    BundleStore(demo.fed.directory / "data" / "bundles").keep(bundle)
    demo.publish(v3, signer=demo.signer)
    await asyncio.to_thread(demo.wait_said, "gateway", "now version 3", 15)
    outcome = await _answered(demo, "us.fbi", "FBI asks")
    assert outcome.result is not None
    decisions = [decode_event(e.entry) for e in outcome.result.receipt.entries]
    decided = [d for d in decisions if isinstance(d, DecisionEvent)]
    assert [(d.agreement, d.bundle_digest) for d in decided] == [("us-ca-agreement-2027", bundle.digest)]
    await _answered(demo, "ca.rcmp", "RCMP fetches")
    for name in demo.logs:
        assert "Traceback" not in demo.said(name), demo.said(name)
