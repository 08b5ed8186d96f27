"""The federation file changes while the gateway and the nodes run (real processes).

Version 1 names one federation signing key. Each bad file is refused with an alert in the
server's log and the trusted version stays in use: garbage, a file edited after signing, a
file signed by a key the trusted version does not name. A correctly signed version 2 that
removes an investigator takes effect within seconds, without a restart; a version 3 that
expires while the servers run makes them fail closed with FEDERATION_FILE_EXPIRED.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from served import wait_for
from signed_demo import SignedDemo, signed_demo, signed_version

from comity.core.errors import ComityError
from comity.core.keys import SigningKey
from comity.sdk.demo.run import Outcome, run_scenario, scenarios
from comity.sdk.profile import load_profile

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedDemo]:
    with signed_demo(Path(tmp_path_factory.mktemp("reload")), seed=13) as demo:
        yield demo


async def _query(running: SignedDemo, agency: str, title: str) -> Outcome:
    s = next(x for x in scenarios(running.fed) if x.title.startswith(title))
    async with load_profile(running.fed.profiles[agency]).async_client() as client:
        return await run_scenario(client, running.fed, s)


async def _answered(running: SignedDemo, agency: str, title: str) -> None:
    for _ in range(60):  # a node's channel back to the gateway may still be in back-off
        outcome = await _query(running, agency, title)
        if outcome.result is not None:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{title!r} not answered: {outcome.error}")


def _without_rcmp_investigator(text: str) -> str:
    cut = re.sub(r'\[\[members.investigators\]\]\nid = "ca.rcmp/[^"]*"\nkey = "[^"]*"\n', "", text)
    assert cut != text
    return cut


async def _alerted(running: SignedDemo, check: str) -> None:
    for name in running.logs:
        await asyncio.to_thread(
            wait_for, lambda n=name: f"({check})" in running.said(n), f"{name}'s alert {check}"
        )


async def test_bad_files_are_refused_and_a_signed_revocation_applies_without_restart(
    running: SignedDemo,
) -> None:
    await _answered(running, "ca.rcmp", "RCMP fetches")
    v2 = signed_version(
        _without_rcmp_investigator(running.original),
        version=2,
        expires="2030-01-01T00:00:00Z",
        signer=running.signer,
    )

    # Garbage, beside the trusted version's envelope: the envelope signs other bytes.
    running.publish("this is [[ not a federation file")
    await _alerted(running, "FEDERATION_EDITED_AFTER_SIGNING")
    # Signed, but by a key version 1 does not name.
    running.publish(v2, signer=SigningKey.generate("us.fbi/federation-2026"))
    await _alerted(running, "FEDERATION_BELOW_THRESHOLD")
    # Signed by the right key, but not a newer version (a replay of version 1, edited).
    v1 = signed_version(running.original, version=1, expires="2029-01-01T00:00:00Z", signer=running.signer)
    running.publish(v1, signer=running.signer)
    await _alerted(running, "FEDERATION_VERSION")
    for name in running.logs:
        assert "Traceback" not in running.said(name), running.said(name)
    outcome = await _query(running, "ca.rcmp", "RCMP fetches")
    assert outcome.result is not None, outcome.error  # still serving version 1

    running.publish(v2, signer=running.signer)
    for name in running.logs:  # every server follows the file within seconds, without a restart
        await asyncio.to_thread(
            wait_for, lambda n=name: "now version 2" in running.said(n), f"{name}'s reload", 15
        )
    outcome = await _query(running, "ca.rcmp", "RCMP fetches")
    assert outcome.error is not None, "the revoked investigator is still served"
    assert outcome.error.code == grpc.StatusCode.UNAUTHENTICATED
    assert outcome.error.check_codes == ["TOKEN_SUBJECT"], outcome.error.message
    await _answered(running, "us.fbi", "FBI asks")  # everyone else is served as before

    # Version 3 expires in a few seconds: from then on, every request is refused.
    expires = (datetime.now(UTC) + timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    running.publish(
        signed_version(
            _without_rcmp_investigator(running.original), version=3, expires=expires, signer=running.signer
        ),
        signer=running.signer,
    )
    await asyncio.to_thread(wait_for, lambda: "now version 3" in running.said("gateway"), "version 3")
    await _answered(running, "us.fbi", "FBI asks")
    await asyncio.sleep(max(0.0, (datetime.fromisoformat(expires) - datetime.now(UTC)).total_seconds()) + 0.5)
    outcome = await _query(running, "us.fbi", "FBI asks")
    assert outcome.error is not None
    err: ComityError = outcome.error
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.check_codes == ["FEDERATION_FILE_EXPIRED"]
    assert "version 3" in err.message and "expired" in err.message
