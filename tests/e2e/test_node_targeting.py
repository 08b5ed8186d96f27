"""The node checks what it knows, end to end over real servers (SDK → gateway → node, both ways).

A requester who attests falsely that a target is not one of the responding country's persons
passes the gateway; the node's own records say otherwise. A hit check then looks exactly like
a no-hit, a fetch is refused with the generic code the gateway uses, the order's allowance of
such outcomes runs out, and released records carry no subject-country field and no incidental
own person's identity.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from bench.federation import own_database
from comity.core import errors
from comity.nodes.ingest import load_records
from comity.nodes.schema import DataCategory, Record, SelectorType, default_schema
from comity.nodes.store import RecordStore
from comity.nodes.synthetic import Person, generate
from comity.sdk.demo.run import RunningFederation, Scenario, run_scenario, running_federation, scenarios
from comity.sdk.demo.setup import DemoFederation, OrderSpec, build_demo_federation
from comity.sdk.profile import load_profile
from comity.sdk.result import Result
from comity.v1 import comity_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")

EMAIL = (SelectorType.EMAIL,)
SUBJECT_COUNTRY = {f for rt in default_schema() for f in rt.subject_country_fields}
# (requesting agency, responding node, responding country)
DIRECTIONS = [("us.fbi", "ca-node", "CA"), ("ca.rcmp", "us-node", "US")]
OFFENCE = {"us.fbi": "18 USC 1030(a)(7)", "ca.rcmp": "CC 346"}
OTHER = {"CA": "US", "US": "CA"}


# Records whose subject facts cannot be read: a country that is not a code, a missing field.
BROKEN = {
    "garbled": {"subject_nationality": "Canada", "subject_residence": "CA"},
    "missing": {"subject_residence": "US"},
}


def _broken(country: str, name: str) -> Person:
    return Person(name, OTHER[country], OTHER[country], {SelectorType.EMAIL: f"{name}.record@example.org"})


def _add_broken_records(url: str, country: str) -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    with RecordStore(url) as store:
        store.put(
            Record(
                f"broken-{name}",
                "subscriber_account",
                DataCategory.SUBSCRIBER,
                at,
                {
                    "account_id": f"BROKEN-{name}",
                    "provider": "Test",
                    "email": _broken(country, name).selectors[SelectorType.EMAIL],
                    "full_name": "Broken Record",
                    "created_at": at.isoformat(),
                    **facts,
                },
            )
            for name, facts in BROKEN.items()
        )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def federation(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoFederation]:
    """The demo federation with each node's records in SQLite, or in a PostgreSQL database of its own."""
    fed = build_demo_federation(Path(tmp_path_factory.mktemp("targeting")), people=40, seed=7)
    databases = contextlib.ExitStack()
    for node, config in fed.node_configs.items():
        country = "CA" if node == "ca-node" else "US"
        url = f"sqlite:///{fed.directory / 'data' / f'{node}.db'}"
        if request.param == "postgresql":
            url = databases.enter_context(own_database(request.getfixturevalue("postgres_url"), "comity_nt"))
            with RecordStore(url) as store:
                load_records(store, generate(country, 40, 7).records, region=country)
            text = config.read_text().replace(f'url = "sqlite:///../data/{node}.db"', f'url = "{url}"')
            assert url in text
            config.write_text(text)
        _add_broken_records(url, country)
    with databases:
        yield fed


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def running(federation: DemoFederation) -> AsyncIterator[RunningFederation]:
    """Both nodes and the gateway, on this module's federation."""
    async with running_federation(federation) as r:
        yield r


def _base(running: RunningFederation, agency: str) -> Scenario:
    title = "FBI fetches" if agency == "us.fbi" else "RCMP fetches"
    return next(s for s in scenarios(running.federation) if s.title.startswith(title))


def _scenario(
    running: RunningFederation,
    agency: str,
    node: str,
    person: Person,
    *,
    kind: str,
    order_id: str,
    attest: str,
    categories: tuple[str, ...] = ("SUBSCRIBER",),
    emergency: bool = False,
) -> Scenario:
    order = OrderSpec(
        order_id,
        agency,
        OFFENCE[agency],
        person,
        EMAIL,
        categories,
        nationalities=(attest,),
        residences=(attest,),
        emergency=emergency,
    )
    base = _base(running, agency)
    return replace(base, node=node, person=person, kind=kind, categories=categories, order=order)


def _own(running: RunningFederation, node: str, country: str) -> Person:
    return next(p for p in running.federation.subjects[node] if p.nationality == country == p.residence)


def _unknown(country: str) -> Person:
    return Person("Nobody Known", country, country, {SelectorType.EMAIL: "nobody.known.here@example.org"})


async def _run(running: RunningFederation, agency: str, s: Scenario, reference: str = "") -> Result:
    async with load_profile(running.federation.profiles[agency]).async_client() as client:
        outcome = await run_scenario(client, running.federation, s, hit_reference=reference)
    assert outcome.result is not None, outcome.error
    return outcome.result


async def _refusal(running: RunningFederation, agency: str, s: Scenario) -> errors.PermissionDenied:
    async with load_profile(running.federation.profiles[agency]).async_client() as client:
        outcome = await run_scenario(client, running.federation, s)
    assert isinstance(outcome.error, errors.PermissionDenied), outcome
    return outcome.error


def _statement(result: Result) -> pb.NodeStatement:
    return pb.NodeStatement.FromString(result.receipt.node_statement.payload)


@pytest.mark.parametrize(("agency", "node", "country"), DIRECTIONS)
async def test_own_person_hit_check_looks_exactly_like_a_no_hit(
    running: RunningFederation, agency: str, node: str, country: str
) -> None:
    other = OTHER[country]
    own = _own(running, node, country)
    masked = await _run(
        running,
        agency,
        _scenario(running, agency, node, own, kind="hit-check", order_id=f"HC-OWN-{node}", attest=other),
    )
    nothing = await _run(
        running,
        agency,
        _scenario(
            running, agency, node, _unknown(other), kind="hit-check", order_id=f"HC-NONE-{node}", attest=other
        ),
    )
    for name in ("node_id", "hit", "hit_reference", "records", "use_restrictions", "truncated"):
        assert getattr(masked, name) == getattr(nothing, name), name
    assert masked.hit is False and masked.hit_reference == ""
    assert len(masked.receipt.entries) == len(nothing.receipt.entries)
    a, b = _statement(masked), _statement(nothing)
    assert a.sealed_reason.scheme == b.sealed_reason.scheme and a.sealed_reason.scheme
    assert len(a.sealed_reason.commitment) == len(b.sealed_reason.commitment) == 32
    varying = {"query_id", "query_digest", "answered_at", "sealed_reason"}
    for field in pb.NodeStatement.DESCRIPTOR.fields:
        if field.name not in varying:
            assert getattr(a, field.name) == getattr(b, field.name), field.name
    assert {f.name for f, _ in a.ListFields()} == {f.name for f, _ in b.ListFields()}


@pytest.mark.parametrize(("agency", "node", "country"), DIRECTIONS)
async def test_own_person_fetch_is_refused_with_the_gateways_generic_code(
    running: RunningFederation, agency: str, node: str, country: str
) -> None:
    own = _own(running, node, country)
    lied = await _refusal(
        running,
        agency,
        _scenario(running, agency, node, own, kind="fetch", order_id=f"F-LIE-{node}", attest=OTHER[country]),
    )
    honest = await _refusal(
        running,
        agency,
        _scenario(running, agency, node, own, kind="fetch", order_id=f"F-TRUE-{node}", attest=country),
    )
    assert lied.rule_codes == ["REFUSED"]
    assert [(v.code, v.message, v.legal_basis) for v in lied.violations] == [
        (v.code, v.message, v.legal_basis) for v in honest.violations
    ]
    assert all(country not in v.message and "national" not in v.message.lower() for v in lied.violations)


async def test_regression_false_attestation_releases_nothing_about_a_canadian(
    running: RunningFederation,
) -> None:
    """A US query about a person the Canadian node's records show as Canadian, attested "US"."""
    canadian = _own(running, "ca-node", "CA")
    for kind, categories, emergency in (
        ("fetch", ("SUBSCRIBER",), False),
        ("fetch", ("SUBSCRIBER", "TRAFFIC"), True),  # the emergency track needs no hit reference
    ):
        s = _scenario(
            running,
            "us.fbi",
            "ca-node",
            canadian,
            kind=kind,
            order_id=f"REG-{len(categories)}",
            attest="US",
            categories=categories,
            emergency=emergency,
        )
        err = await _refusal(running, "us.fbi", s)
        assert err.rule_codes == ["REFUSED"]


async def test_the_order_allowance_of_own_person_outcomes_runs_out(running: RunningFederation) -> None:
    own = _own(running, "ca-node", "CA")
    s = _scenario(running, "us.fbi", "ca-node", own, kind="hit-check", order_id="HC-LIMIT", attest="US")
    for _ in range(3):
        assert (await _run(running, "us.fbi", s)).hit is False
    err = await _refusal(running, "us.fbi", s)
    assert err.rule_codes == ["REFUSED"]
    # Every further query under the order is refused, whoever it is about.
    other = replace(s, person=_own(running, "ca-node", "CA"), kind="fetch")
    assert (await _refusal(running, "us.fbi", other)).rule_codes == ["REFUSED"]


@pytest.mark.parametrize(("agency", "node", "country"), DIRECTIONS)
async def test_released_records_carry_no_country_and_no_incidental_own_person(
    running: RunningFederation, agency: str, node: str, country: str
) -> None:
    other = OTHER[country]
    target = _own(running, node, other)
    categories = ("SUBSCRIBER", "TRAFFIC")
    hit = await _run(
        running,
        agency,
        _scenario(
            running,
            agency,
            node,
            target,
            kind="hit-check",
            order_id=f"INC-{node}",
            attest=other,
            categories=categories,
        ),
    )
    assert hit.hit
    fetched = await _run(
        running,
        agency,
        _scenario(
            running,
            agency,
            node,
            target,
            kind="fetch",
            order_id=f"INC-{node}",
            attest=other,
            categories=categories,
        ),
        hit.hit_reference,
    )
    assert fetched.records
    own_emails = {
        p.selectors[SelectorType.EMAIL]
        for p in generate(country, 40, 7).people
        if country in (p.nationality, p.residence)
    }
    incidental = 0
    for record in fetched.records:
        assert not SUBJECT_COUNTRY & set(record.fields), record.fields
        if record.record_type == "message_metadata":
            assert record.fields.get("recipient_email") not in own_emails
            incidental += "recipient_email" not in record.fields
    assert incidental, "the target wrote to at least one of the node's own persons"


@pytest.mark.parametrize(("agency", "node", "country"), DIRECTIONS)
@pytest.mark.parametrize("broken", sorted(BROKEN))
@pytest.mark.parametrize("kind", ["hit-check", "fetch"])
async def test_unreadable_subject_facts_refuse(
    running: RunningFederation, agency: str, node: str, country: str, broken: str, kind: str
) -> None:
    person = _broken(country, broken)
    s = _scenario(
        running,
        agency,
        node,
        person,
        kind=kind,
        order_id=f"BROKEN-{node}-{kind}-{broken}",
        attest=OTHER[country],
    )
    err = await _refusal(running, agency, s)
    assert err.rule_codes == ["REFUSED"], err.diagnostics()
