"""Target facts end to end, both directions, through the real gateway and nodes.

An empty attestation once became "UNKNOWN" and passed NO_TARGETING, and a dual national could
not be attested at all; these run the real servers with orders signed by the real authorities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from comity.core import errors
from comity.core.keys import SigningKey
from comity.core.orders import sign_order
from comity.sdk.demo.run import Outcome, RunningFederation, Scenario, run_scenario, scenarios
from comity.sdk.profile import load_profile
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")

# (requesting agency, its scenario, responding country, the requesting country)
DIRECTIONS = [("us.fbi", "FBI fetches", "CA", "US"), ("ca.rcmp", "RCMP fetches", "US", "CA")]
_ids = iter(range(10_000))


def _scenario(running: RunningFederation, title: str, **order: object) -> Scenario:
    base = next(s for s in scenarios(running.federation) if s.title.startswith(title))
    order_id = f"{base.order.order_id}-T{next(_ids)}"
    # Subscriber data only: a fetch of traffic data would need a hit check first (TWO_STEP).
    return replace(
        base,
        categories=("SUBSCRIBER",),
        order=replace(base.order, order_id=order_id, **order),  # type: ignore[arg-type]
    )


def _re_sign(running: RunningFederation, s: Scenario, change: Callable[[pb.LegalOrder], None]) -> None:
    """Sign ``s``'s order, change what it says, and have its authority sign the changed order."""
    fed = running.federation
    path = fed.sign_order(s.order, now=datetime.now(UTC))
    envelope = pb.Envelope.FromString(path.read_bytes())
    order = pb.LegalOrder.FromString(envelope.payload)
    change(order)
    agency = fed.layout.agencies[s.order.agency]
    key = SigningKey.load(agency.authority_key, key_id=agency.authority)
    path.write_bytes(sign_order(order, key).SerializeToString())


async def _run(running: RunningFederation, s: Scenario) -> Outcome:
    async with load_profile(running.federation.profiles[s.agency]).async_client() as client:
        return await run_scenario(client, running.federation, s)


@pytest.mark.parametrize(("agency", "title", "responding", "requesting"), DIRECTIONS)
async def test_a_dual_national_of_two_other_countries_is_answered(
    running: RunningFederation, agency: str, title: str, responding: str, requesting: str
) -> None:
    s = _scenario(running, title, nationalities=(requesting, "GB"))
    outcome = await _run(running, s)
    assert outcome.result is not None, outcome.error
    assert outcome.result.records


@pytest.mark.parametrize(("agency", "title", "responding", "requesting"), DIRECTIONS)
async def test_a_dual_national_of_the_responding_country_is_refused_generically(
    running: RunningFederation, agency: str, title: str, responding: str, requesting: str
) -> None:
    s = _scenario(running, title, nationalities=(requesting, responding))
    err = (await _run(running, s)).error
    assert isinstance(err, errors.PermissionDenied)
    assert err.rule_codes == ["REFUSED"]
    assert responding not in err.message and "national" not in err.diagnostics().lower()


@pytest.mark.parametrize(("agency", "title", "responding", "requesting"), DIRECTIONS)
async def test_a_company_incorporated_in_the_responding_country_is_refused(
    running: RunningFederation, agency: str, title: str, responding: str, requesting: str
) -> None:
    s = _scenario(running, title, target_kind="legal-person", incorporated_in=responding)
    err = (await _run(running, s)).error
    assert isinstance(err, errors.PermissionDenied)
    assert err.rule_codes == ["REFUSED"]


@pytest.mark.parametrize(("agency", "title", "responding", "requesting"), DIRECTIONS)
@pytest.mark.parametrize("field", ["nationalities", "residences", "locations"])
async def test_an_empty_attestation_is_invalid_and_named(
    running: RunningFederation, agency: str, title: str, responding: str, requesting: str, field: str
) -> None:
    s = _scenario(running, title)
    _re_sign(running, s, lambda order: order.target.ClearField(field))  # type: ignore[arg-type]
    err = (await _run(running, s)).error
    assert isinstance(err, errors.InvalidArgument)
    assert err.check_codes[0] == "ORDER_TARGET_EMPTY"
    assert err.rule_codes[0] == "NO_TARGETING"
    assert f"target.{field} is empty" in err.message


@pytest.mark.parametrize(("agency", "title", "responding", "requesting"), DIRECTIONS)
@pytest.mark.parametrize(
    ("codes", "check", "field"),
    [
        (["UK"], "ORDER_TARGET_CODE", "target.nationalities[0]"),
        (["GB", "Canada"], "ORDER_TARGET_CODE", "target.nationalities[1]"),
        (["GB", "GB"], "ORDER_TARGET_REPEATED", "target.nationalities[1]"),
    ],
)
async def test_bad_or_repeated_codes_are_invalid_and_named(
    running: RunningFederation,
    agency: str,
    title: str,
    responding: str,
    requesting: str,
    codes: list[str],
    check: str,
    field: str,
) -> None:
    s = _scenario(running, title)

    def change(order: pb.LegalOrder) -> None:
        del order.target.nationalities[:]
        order.target.nationalities.extend(codes)

    _re_sign(running, s, change)
    err = (await _run(running, s)).error
    assert isinstance(err, errors.InvalidArgument)
    assert err.check_codes[0] == check
    assert field in err.message


@pytest.mark.parametrize(("agency", "title", "responding", "requesting"), DIRECTIONS)
async def test_an_order_in_the_old_format_must_be_re_signed(
    running: RunningFederation, agency: str, title: str, responding: str, requesting: str
) -> None:
    s = _scenario(running, title)

    def old_format(order: pb.LegalOrder) -> None:
        order.ClearField("target")
        order.attestation.CopyFrom(
            pb.TargetAttestation(nationality="", residence="RU", location="RU", not_for_third_government=True)
        )

    _re_sign(running, s, old_format)
    err = (await _run(running, s)).error
    assert isinstance(err, errors.FailedPrecondition)
    assert err.check_codes[0] == "ORDER_TARGET_MISSING"
    assert err.rule_codes[0] == "INDEPENDENT_AUTHORISATION"
    assert "Have it re-signed by its authority" in err.message
    # The old, empty nationality reached no rule as a value: NO_TARGETING refused as well.
    assert "REFUSED" in err.rule_codes
