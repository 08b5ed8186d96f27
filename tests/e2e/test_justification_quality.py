"""Justification quality through the real gateway: padded boilerplate and copied facts are refused.

Regression tests: boilerplate padded with a few words used to pass JUSTIFICATION (only exact
matches were caught), and so did a justification copied word for word from another case.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from comity.audit.events import DecisionEvent, decode_event
from comity.core import errors
from comity.sdk.demo.run import RunningFederation, Scenario, scenarios
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec, Selector, read_order_file

pytestmark = pytest.mark.asyncio(loop_scope="module")

PADDED = "Criminal investigation, ongoing: the information is material and relevant, urgently needed by us."


def _scenario(running: RunningFederation, title: str) -> Scenario:
    return next(s for s in scenarios(running.federation) if s.title.startswith(title))


def _spec(running: RunningFederation, s: Scenario, *, case: str, facts: str) -> QuerySpec:
    fed = running.federation
    order = fed.orders.get(s.order.order_id) or fed.sign_order(s.order, now=datetime.now(UTC))
    return QuerySpec(
        target_node=s.node,
        selectors=[Selector(t.name, s.person.selectors[t]) for t in s.order.selector_types],
        categories=["subscriber"],
        kind="fetch",
        case_reference=case,
        facts=facts,
        link_to_offence=s.link,
        legal_order=read_order_file(order),
        time_range=s.time_range,
    )


async def _refused(running: RunningFederation, agency: str, spec: QuerySpec) -> errors.ComityError:
    async with load_profile(running.federation.profiles[agency]).async_client() as client:
        with pytest.raises(errors.ComityError) as exc:
            await client.query(spec)
    return exc.value


async def _allowed(running: RunningFederation, agency: str, spec: QuerySpec) -> None:
    async with load_profile(running.federation.profiles[agency]).async_client() as client:
        await client.query(spec)


async def test_padded_boilerplate_is_refused_with_what_to_write_instead(running: RunningFederation) -> None:
    fbi = _scenario(running, "FBI fetches")
    err = await _refused(running, "us.fbi", _spec(running, fbi, case="FBI-2026-BP-0001", facts=PADDED))
    assert isinstance(err, errors.PermissionDenied)
    assert err.rule_codes == ["JUSTIFICATION"]
    assert "articulable facts specific to this case" in err.violations[0].message


async def test_facts_copied_under_another_case_are_refused_and_logged_as_reused(
    running: RunningFederation,
) -> None:
    fbi = _scenario(running, "FBI fetches")
    facts = (
        "On 14 October 2026 a ransomware crew encrypted the scheduling servers of a dialysis clinic in "
        "Albany and demanded 25 bitcoin; the demand named this account for payment instructions."
    )
    await _allowed(running, "us.fbi", _spec(running, fbi, case="FBI-2026-CY-0500", facts=facts))
    await _allowed(running, "us.fbi", _spec(running, fbi, case="FBI-2026-CY-0500", facts=facts))  # same case

    err = await _refused(running, "us.fbi", _spec(running, fbi, case="FBI-2026-CY-0501", facts=facts))
    assert isinstance(err, errors.PermissionDenied)
    assert err.rule_codes == ["JUSTIFICATION"]
    assert "write a new one for a new case" in err.violations[0].message
    # The derived fact is logged with the decision (the text only as a commitment).
    assert err.receipt is not None
    logged = [decode_event(e.entry) for e in err.receipt.entries]
    decision = next(e for e in logged if isinstance(e, DecisionEvent))
    assert decision.decision == "DENY"
    assert decision.facts["justification_reused"] is True
    assert decision.facts["case_reference"] == "FBI-2026-CY-0501"
    assert "dialysis" not in repr(decision)

    # Another agency is not linked to the FBI's cases, even with the same words.
    rcmp = _scenario(running, "RCMP fetches")
    await _allowed(running, "ca.rcmp", _spec(running, rcmp, case="RCMP-2026-CY-0077", facts=facts))


async def test_facts_of_a_refused_query_are_not_counted_as_used(running: RunningFederation) -> None:
    fbi = _scenario(running, "FBI fetches")
    facts = (
        "On 2 November 2026 the payroll system of a school district in Buffalo was locked by ransomware "
        "and a note demanded 12 bitcoin, naming this account as the only contact."
    )
    refused = replace(_spec(running, fbi, case="FBI-2026-CY-0600", facts=facts), link_to_offence=PADDED)
    assert (await _refused(running, "us.fbi", refused)).rule_codes == ["JUSTIFICATION"]
    # The refused query's facts were not used: the right case may state them.
    await _allowed(running, "us.fbi", _spec(running, fbi, case="FBI-2026-CY-0601", facts=facts))
