"""Running the demo: start the federation, query both ways, verify the log, tell the story."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shlex
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from comity.core.errors import ComityError, PermissionDenied
from comity.core.federation import Federation
from comity.gateway.config import load_gateway_config
from comity.gateway.server import RunningGateway, start_gateway
from comity.nodes.config import load_node_config
from comity.nodes.schema import SelectorType
from comity.nodes.server import start_node
from comity.nodes.synthetic import Person
from comity.sdk.client import AsyncClient
from comity.sdk.demo.more_countries import further_countries, partner_bundles, partner_scenarios
from comity.sdk.demo.scenario import Scenario
from comity.sdk.demo.setup import DEMO_COUNTRIES, DemoFederation, OrderSpec, build_demo_federation
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec, Selector, read_order_file
from comity.sdk.result import Result

__all__ = ["Outcome", "Scenario", "run_demo", "running_federation"]


@dataclass
class RunningFederation:
    """The demo's servers, started in this process."""

    federation: DemoFederation
    gateway: RunningGateway
    stops: list[object]

    async def stop(self) -> None:
        """Stop the gateway first (no new queries), then the nodes."""
        await self.gateway.handle.stop(1.0)
        for handle in self.stops:
            await handle.stop(1.0)  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def running_federation(federation: DemoFederation) -> AsyncIterator[RunningFederation]:
    """Start the gateway, then both nodes, from the demo's config files; stop them on exit.

    The gateway first: each node checks its witness state against the gateway's log at start.
    The witnessing and recovery loops start once the nodes are up.
    """
    gateway = await start_gateway(load_gateway_config(federation.gateway_config), start_witnessing=False)
    nodes = []
    try:
        for path in federation.node_configs.values():
            nodes.append(await start_node(load_node_config(path)))
    except BaseException:
        for handle in nodes:
            await handle.stop(0)
        await gateway.handle.stop(0)
        raise
    gateway.start_background()
    running = RunningFederation(federation, gateway, list(nodes))
    try:
        yield running
    finally:
        await running.stop()


@dataclass
class Outcome:
    """What happened to a scenario."""

    scenario: Scenario
    result: Result | None
    error: ComityError | None

    @property
    def as_expected(self) -> bool:
        """Whether it was allowed or refused as the scenario says it should be."""
        return (self.result is not None) == self.scenario.expect_allowed


def _person(subjects: list[Person], nationality: str, residence: str) -> Person:
    return next(p for p in subjects if p.nationality == nationality and p.residence == residence)


def _countries(fed: DemoFederation) -> list[str]:
    return [n.country for n in fed.layout.nodes.values()]


def scenarios(fed: DemoFederation) -> list[Scenario]:
    """The demo's story: allowed queries both ways, then the refusals the agreement requires.

    With more countries, then each further country's queries (:func:`partner_scenarios`).
    """
    in_ca = fed.subjects["ca-node"]
    in_us = fed.subjects["us-node"]
    us_target = _person(in_ca, "US", "US")  # a US person with an account at a Canadian provider
    ca_target = _person(in_us, "CA", "CA")
    canadian = _person(in_ca, "CA", "CA")
    email_ip = (SelectorType.EMAIL,)
    return [
        Scenario(
            "FBI asks the Canadian node whether it holds anything on a ransomware suspect",
            "us.fbi",
            "ca-node",
            us_target,
            "hit-check",
            ("SUBSCRIBER",),
            OrderSpec(
                "US-SDNY-2026-0101",
                "us.fbi",
                "18 USC 1030(a)(7)",
                us_target,
                email_ip,
                ("SUBSCRIBER", "TRAFFIC"),
            ),
            True,
            "A hit check answers only hit / no hit and an opaque reference (two-step, Prüm).",
        ),
        Scenario(
            "FBI fetches the suspect's subscriber and connection records from Canada",
            "us.fbi",
            "ca-node",
            us_target,
            "fetch",
            ("SUBSCRIBER", "TRAFFIC"),
            OrderSpec(
                "US-SDNY-2026-0101",
                "us.fbi",
                "18 USC 1030(a)(7)",
                us_target,
                email_ip,
                ("SUBSCRIBER", "TRAFFIC"),
            ),
            True,
            "Judicial order, serious offence, US target: allowed, minimised, signed by the node.",
        ),
        Scenario(
            "RCMP fetches subscriber records of a firearms-trafficking suspect from the US node",
            "ca.rcmp",
            "us-node",
            ca_target,
            "fetch",
            ("SUBSCRIBER",),
            OrderSpec("CA-ONSC-2026-0042", "ca.rcmp", "CC 99", ca_target, email_ip, ("SUBSCRIBER",)),
            True,
            "The other direction: a Canadian order under the Criminal Code, checked by the US node too.",
            facts=(
                "Three handguns recovered in Toronto on 2026-09-14 were traced to straw purchases arranged "
                "by e-mail from this account."
            ),
            link="The account arranged the purchases and the cross-border delivery of the handguns.",
            case_reference="RCMP-2026-FA-0042",
        ),
        Scenario(
            "FBI asks about a minor computer-access offence",
            "us.fbi",
            "ca-node",
            us_target,
            "fetch",
            ("SUBSCRIBER",),
            OrderSpec(
                "US-SDNY-2026-0102", "us.fbi", "18 USC 1030(a)(2)", us_target, email_ip, ("SUBSCRIBER",)
            ),
            False,
            "The offence carries less than 3 years: the agreement covers serious crime only.",
        ),
        Scenario(
            "FBI asks the Canadian node about a dual national, US and Canadian",
            "us.fbi",
            "ca-node",
            canadian,
            "fetch",
            ("SUBSCRIBER",),
            OrderSpec(
                "US-SDNY-2026-0103",
                "us.fbi",
                "18 USC 1030(a)(7)",
                canadian,
                email_ip,
                ("SUBSCRIBER",),
                nationalities=("US", "CA"),
            ),
            False,
            "No targeting of the other country's persons, dual nationals included; the refusal is one "
            "generic code on purpose.",
        ),
        Scenario(
            "FBI adds a phone number its order does not name",
            "us.fbi",
            "ca-node",
            us_target,
            "fetch",
            ("SUBSCRIBER",),
            OrderSpec(
                "US-SDNY-2026-0104", "us.fbi", "18 USC 1030(a)(7)", us_target, email_ip, ("SUBSCRIBER",)
            ),
            False,
            "Every selector needs the authorisation of an independent authority; this one has none.",
            extra_selectors=(SelectorType.PHONE,),
        ),
        *(x for c in further_countries(_countries(fed)) for x in partner_scenarios(fed, c)),
    ]


async def run_scenario(
    client: AsyncClient, fed: DemoFederation, s: Scenario, *, hit_reference: str = ""
) -> Outcome:
    """Sign the scenario's order, submit its query, and record the outcome."""
    try:
        return Outcome(s, await client.query(scenario_spec(fed, s, hit_reference=hit_reference)), None)
    except ComityError as err:
        return Outcome(s, None, err)


def scenario_spec(fed: DemoFederation, s: Scenario, *, hit_reference: str = "") -> QuerySpec:
    """The scenario's query, with its order signed (once) by the requesting country's authority."""
    order_path = fed.orders.get(s.order.order_id) or fed.sign_order(s.order, now=datetime.now(UTC))
    return QuerySpec(
        target_node=s.node,
        selectors=[
            Selector(t.name, s.person.selectors[t]) for t in (*s.order.selector_types, *s.extra_selectors)
        ],
        categories=[c.lower() for c in s.categories],
        kind=s.kind,
        case_reference=s.case_reference,
        facts=s.facts,
        link_to_offence=s.link,
        legal_order=read_order_file(order_path),
        time_range=s.time_range,
        hit_reference=hit_reference,
    )


def _print_outcome(console: Console, number: int, outcome: Outcome) -> None:
    s = outcome.scenario
    arrow = f"{s.agency} → {s.node}"
    if outcome.result is not None:
        r = outcome.result
        what = ("HIT" if r.hit else "no hit") if s.kind == "hit-check" else f"{len(r.records)} record(s)"
        head = f"[green]ALLOWED[/] {what}"
    else:
        err = outcome.error
        assert err is not None
        codes = (
            ", ".join(err.rule_codes)
            if isinstance(err, PermissionDenied) and err.violations
            else err.code.name
        )
        head = f"[red]REFUSED[/] {codes}"
    mark = "" if outcome.as_expected else "  [bold red](unexpected!)[/]"
    console.print(f"\n[bold]{number}. {s.title}[/]  [dim]{arrow}[/]")
    console.print(f"   {head}{mark}")
    console.print(f"   [dim]{s.explains}[/]")
    if outcome.result is not None and outcome.result.records:
        table = Table(show_header=True, box=None, pad_edge=False)
        for col in ("record type", "category", "fields released"):
            table.add_column(col)
        for rec in outcome.result.records[:4]:
            table.add_row(rec.record_type, rec.category, ", ".join(sorted(rec.fields))[:90])
        console.print(table)
        if outcome.result.use_restrictions:
            codes = ", ".join(u.code for u in outcome.result.use_restrictions)
            console.print(f"   use restrictions: [yellow]{codes}[/]")
    if outcome.error is not None and isinstance(outcome.error, PermissionDenied):
        for v in outcome.error.violations:
            console.print(f"   [red]{v.code}[/]: {v.message} [dim]({v.legal_basis})[/]")


async def play(running: RunningFederation, console: Console) -> list[Outcome]:
    """Run every scenario in order (the fetch follows the hit check with its reference)."""
    fed = running.federation
    outcomes: list[Outcome] = []
    clients = {agency: load_profile(path).async_client() for agency, path in fed.profiles.items()}
    try:
        # A fetch that follows a hit check carries its reference (same order, same selectors).
        references: dict[str, str] = {}
        for number, s in enumerate(scenarios(fed), start=1):
            reference = references.get(s.order.order_id, "") if s.kind == "fetch" else ""
            outcome = await run_scenario(clients[s.agency], fed, s, hit_reference=reference)
            if s.kind == "hit-check" and outcome.result is not None:
                references[s.order.order_id] = outcome.result.hit_reference
            outcomes.append(outcome)
            _print_outcome(console, number, outcome)
    finally:
        for client in clients.values():
            await client.close()
    return outcomes


def emergency_scenario(fed: DemoFederation) -> Scenario:
    """The FBI's emergency fetch of connection records, skipping the hit check (imminent threat)."""
    s = next(x for x in scenarios(fed) if x.title.startswith("FBI fetches"))
    return dataclasses.replace(
        s,
        title="FBI fetches connection records at once, on the emergency track (a threat to life)",
        categories=("TRAFFIC",),
        order=dataclasses.replace(s.order, order_id="US-SDNY-2026-E07", emergency=True),
        explains="No hit check first: the emergency order allows it, if a judge reviews it within 48 hours.",
        facts=(
            "A hospital's ransomware attackers threatened on 2026-10-03 to switch off intensive-care "
            "equipment within hours; this account sent the threat."
        ),
    )


async def emergency_track(running: RunningFederation, console: Console, number: int) -> bool:
    """An emergency fetch, then the court's review submitted through the gateway; True if both pass."""
    from comity.core.emergency import sign_validation, validation_for
    from comity.core.keys import SigningKey

    fed = running.federation
    s = emergency_scenario(fed)
    async with load_profile(fed.profiles[s.agency]).async_client() as client:
        outcome = await run_scenario(client, fed, s)
        _print_outcome(console, number, outcome)
        if outcome.result is None:
            return False
        agency = fed.layout.agencies[s.agency]
        court = SigningKey.load(agency.authority_key, key_id=agency.authority)
        order = read_order_file(fed.orders[s.order.order_id])
        review = sign_validation(validation_for(order, authority=court.key_id, confirmed=True), court)
        try:
            logged = await client.validate_emergency(review)
        except ComityError as err:
            console.print(f"   [red]the court's review was refused[/]: {err.message}")
            return False
    name = Federation.load(fed.layout.federation_file).authority(court.key_id).name
    console.print(
        f"   the {name} confirms the emergency {'late' if logged.late else 'in time'}: "
        "its signed review is logged, receipt verified"
    )
    return logged.confirmed


async def run_demo(
    console: Console,
    *,
    directory: Path | None,
    keep: bool,
    people: int,
    seed: int,
    countries: Sequence[str] = DEMO_COUNTRIES,
) -> bool:
    """The whole demo; returns True when every scenario went as the agreement says it should.

    ``countries`` beyond the first two join under an agreement with the first only
    (:mod:`comity.sdk.demo.more_countries`).
    """
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="comity-demo-")))
        console.print(Panel.fit(_introduction(countries), title="Comity demo"))
        console.print(f"[dim]writing keys, certificates, configs and synthetic records to {directory}[/]")
        fed = await asyncio.to_thread(_build, directory, people=people, seed=seed, countries=countries)
        if len(countries) > len(DEMO_COUNTRIES):
            _print_agreements(console, fed)
        async with running_federation(fed) as running:
            console.print(
                f"[dim]gateway on {fed.layout.gateway.endpoint}; "
                + ", ".join(f"{n.node_id} on {n.endpoint}" for n in fed.layout.nodes.values())
                + "; all hops over TLS, gateway ↔ nodes mutual TLS[/]"
            )
            outcomes = await play(running, console)
            ok = all(o.as_expected for o in outcomes)
            ok = await emergency_track(running, console, len(outcomes) + 1) and ok
            ok = await private_check(running, console, len(outcomes) + 2) and ok
            ok = await await_quorum(running, console) and ok
            ok = await verify_log(running, console) and ok
            ok = await verify_log_remotely(running, console, agency="ca.rcmp") and ok
            if keep:
                print_how_to_query(console, fed)
                await wait_forever()
        return ok


def _introduction(countries: Sequence[str]) -> str:
    if tuple(countries) == DEMO_COUNTRIES:
        return (
            "A two-country federation on loopback: the United States and Canada, one data node each,\n"
            "a gateway enforcing the agreement, and a transparency log both countries can verify."
        )
    return (
        f"A federation of {len(countries)} countries on loopback: {', '.join(countries)}, one data node "
        "each,\na gateway deciding each pair of countries under its own agreement, and a transparency log\n"
        "every country's node witnesses."
    )


def _build(directory: Path, *, people: int, seed: int, countries: Sequence[str]) -> DemoFederation:
    """The demo federation, with each further country's agreement bundles made beside it."""
    folder = directory / "agreement-bundles"
    for country in further_countries(countries):
        partner_bundles(folder, country)
    bundles = [folder] if folder.is_dir() else []
    return build_demo_federation(directory, people=people, seed=seed, countries=countries, bundles=bundles)


def _print_agreements(console: Console, fed: DemoFederation) -> None:
    federation = Federation.load(fed.layout.federation_file)
    for agreement in federation.agreements:
        console.print(f"[dim]agreement {agreement.id}: {' – '.join(agreement.parties)}[/]")
    countries = _countries(fed)
    for i, a in enumerate(countries):
        for b in countries[i + 1 :]:
            if federation.agreement_for(a, b, datetime.now(UTC)) is None:
                console.print(f"[dim]no agreement between {a} and {b}: their queries are refused[/]")


async def private_check(running: RunningFederation, console: Console, number: int) -> bool:
    """The FBI asks the Canadian node privately about the suspect and someone it does not hold."""
    fed = running.federation
    s = next(x for x in scenarios(fed) if x.title.startswith("FBI asks the Canadian node whether"))
    order_path = fed.orders.get(s.order.order_id) or fed.sign_order(s.order, now=datetime.now(UTC))
    spec = QuerySpec(
        target_node=s.node,
        selectors=[Selector(t.name, s.person.selectors[t]) for t in s.order.selector_types],
        categories=[c.lower() for c in s.categories],
        kind="private-hit-check",
        case_reference=s.case_reference,
        facts=s.facts,
        link_to_offence=s.link,
        legal_order=read_order_file(order_path),
        time_range=s.time_range,
    )
    console.print(
        f"{number}. FBI asks the Canadian node the same privately: the node sees only a blinded "
        f"selector  {s.agency} → {s.node}"
    )
    async with load_profile(fed.profiles[s.agency]).async_client() as client:
        try:
            result = await client.private_hit_check(spec)
        except ComityError as err:
            console.print(f"   [red]the private hit check was refused[/]: {err.message}")
            return False
    verdict = "HIT" if result.hit else "no hit"
    console.print(
        f"   PRIVATE {verdict} (the node's proof verified; epoch {result.epoch}, "
        f"false-positive rate {result.false_positive_rate:.0e}); only the FBI learns the answer"
    )
    return result.hit


async def await_quorum(running: RunningFederation, console: Console, *, limit: float = 30.0) -> bool:
    """Wait, with no further queries, until the witnesses have cosigned the end of the log."""
    loop = running.gateway.witnessing
    if loop is None:
        return True
    size, _ = running.gateway.ledger.log.newest_signed()
    deadline = asyncio.get_running_loop().time() + limit
    while loop.status.quorum_size is None or loop.status.quorum_size < size:
        if asyncio.get_running_loop().time() > deadline:
            console.print(f"\n[bold red]no witness quorum on the end of the log[/]: {loop.status.detail()}")
            return False
        await asyncio.sleep(0.05)
    console.print(
        f"\n[dim]no query since; the gateway's witnessing loop had every node's witness cosign "
        f"checkpoint {loop.status.quorum_size}, the end of the log[/]"
    )
    return True


async def verify_log(running: RunningFederation, console: Console) -> bool:
    """Verify the transparency log as a legal officer would, and say so."""
    from comity.audit.quorum import Quorum
    from comity.audit.verify import verify_log as verify

    ledger = running.gateway.ledger
    federation = Federation.load(running.federation.layout.federation_file)
    quorum = Quorum.of_federation(federation)
    try:
        report = await asyncio.to_thread(
            verify,
            f"sqlite:///{running.federation.audit_db}",
            verifier_key=ledger.verifier_key,
            quorum=quorum,
        )
    except ComityError as err:
        console.print(f"\n[bold red]audit log verification FAILED[/]: {err.message}")
        return False
    console.print(
        f"\n[bold green]audit log verified[/]: {report.tree_size} entries, every checkpoint signature "
        f"and {report.cosignatures} witness cosignature(s) check out; root {report.root_hash.hex()[:16]}…"
    )
    console.print(
        f"  witness quorum on checkpoint {report.quorum_size} ({', '.join(report.quorum_witnesses)}); "
        f"{report.pending_entries} entries quorum pending"
    )
    return _every_country_witnessed(console, federation, report.quorum_witnesses)


def _every_country_witnessed(console: Console, federation: Federation, witnesses: Sequence[str]) -> bool:
    """Whether the quorum checkpoint's cosigners include a node of every member country.

    The default witness policy demands it; with more than two countries the demo says so.
    """
    by_country = {n.country: n.id for n in federation.nodes() if n.id in witnesses}
    missing = [m.country for m in federation.members if m.country not in by_country]
    if missing:
        console.print(f"  [bold red]no witness of {', '.join(missing)} cosigned the quorum checkpoint[/]")
        return False
    if len(federation.members) > len(DEMO_COUNTRIES):
        named = ", ".join(f"{c} ({n})" for c, n in by_country.items())
        console.print(f"  one checkpoint, one log: cosigned by a node of every member country, {named}")
    return True


async def verify_log_remotely(running: RunningFederation, console: Console, *, agency: str) -> bool:
    """Verify the log as ``agency``'s legal officer, through the gateway's AuditLog service.

    This is how the other country checks the log: it holds no copy of the database, fetches
    every entry with its legal officer's token (an entry of an agreement its country is not
    party to comes as its leaf hash only), and trusts only the keys in the federation file.
    """
    from comity.audit.quorum import Quorum
    from comity.sdk.auditor import AuditClient, verify_remote
    from comity.sdk.receipts import log_verifier

    fed = running.federation
    federation = Federation.load(fed.layout.federation_file)
    officer = federation.legal_officer(fed.layout.agencies[agency].legal_officer)
    client = AuditClient(
        fed.layout.gateway.endpoint,
        root_certificates=fed.layout.gateway.ca_cert.read_bytes(),
        token=fed.officer_tokens[agency].read_text(encoding="utf-8").strip(),
    )
    try:
        report = await asyncio.to_thread(
            verify_remote,
            client,
            log_key=log_verifier(federation),
            state=None,
            quorum=Quorum.of_federation(federation),
        )
    except ComityError as err:
        console.print(f"[bold red]{officer.id} could not verify the log[/]: {err.message}")
        return False
    finally:
        client.close()
    witnessed = (
        f"witness quorum on checkpoint {report.quorum_size} (cosigned by {', '.join(report.cosigned_by)}), "
        f"{report.pending_entries} entries quorum pending"
        if report.quorum_size is not None
        else f"no witness quorum yet: {report.pending_entries} entries quorum pending"
    )
    console.print(
        f"[bold green]verified again by {officer.id}[/] ({officer.country}) through the gateway's "
        f"AuditLog service, from the entries up: {report.tree_size} entries, {witnessed}"
    )
    if report.withheld:
        console.print(
            f"  {report.withheld} of them withheld from {officer.country}'s officers (other agreements' "
            "entries): verified by their leaf hashes, not readable"
        )
    return True


def print_how_to_query(console: Console, fed: DemoFederation) -> None:
    """Tell a person how to use the federation the demo left running (commands that work as printed)."""
    s = next(x for x in scenarios(fed) if x.title.startswith("RCMP fetches"))
    order = fed.orders[s.order.order_id]
    selector = f"email:{s.person.selectors[SelectorType.EMAIL]}"
    since, until = (t.date().isoformat() for t in s.time_range)
    command = (
        f"comity query --profile {fed.profiles[s.agency]} --node {s.node} --selector {selector} "
        f"--order {order} --category subscriber --case DEMO-1 --since {since} --until {until} "
        f"--facts {shlex.quote(s.facts)} --link {shlex.quote(s.link)}"
    )
    sdk = (
        "from pathlib import Path\n"
        "from comity.sdk.profile import load_profile\n"
        f"client = load_profile(Path({str(fed.profiles[s.agency])!r})).client()"
    )
    console.rule("The federation keeps running; Ctrl-C stops it")
    console.print("Query it from the command line:\n", style="bold")
    console.print(command, soft_wrap=True, markup=False, highlight=False)
    console.print("\nor from Python:\n", style="bold")
    console.print(sdk, soft_wrap=True, markup=False, highlight=False)
    console.print("\nand verify the log as a legal officer:\n", style="bold")
    console.print(
        f"comity audit verify --federation {fed.layout.federation_file} --db {fed.audit_db}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    console.print("\nor, from the other country, through the gateway:\n", style="bold")
    console.print(
        f"comity audit verify --federation {fed.layout.federation_file} "
        f"--gateway {fed.layout.gateway.endpoint} --ca {fed.layout.gateway.ca_cert} "
        f"--token-file {fed.officer_tokens['ca.rcmp']}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )


async def wait_forever() -> None:
    """Sleep until cancelled (Ctrl-C)."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()
