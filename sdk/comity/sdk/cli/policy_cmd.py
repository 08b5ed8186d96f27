"""`comity policy check|explain`: for policy authors and legal officers."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from comity.core.errors import InvalidArgument
from comity.sdk.cli.root import app, console, friendly

policy_app = typer.Typer(help="Check and explain policy bundles.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

BundleOpt = Annotated[str, typer.Option("--bundle", "-b", help="A shipped bundle's name or a bundle folder.")]


@policy_app.command("check")
@friendly
def check(bundle: Annotated[str, typer.Argument(help="A shipped bundle's name or a bundle folder.")]) -> None:
    """Validate a bundle, run its own tests, and print its digest (refuses a bundle whose tests fail)."""
    from comity.policy.select import load_bundle

    loaded = load_bundle(bundle)
    forbids = [r for r in loaded.rules if r.effect == "forbid"]
    console.print(
        f"[green]✓[/] {loaded.name} {loaded.version}: {len(forbids)} rules, {len(loaded.tests)} tests pass"
    )
    table = Table(show_header=True)
    for col in ("rule", "legal basis"):
        table.add_column(col, overflow="fold")
    for rule in forbids:
        table.add_row(rule.id, rule.legal_basis)
    console.print(table)
    console.print(f"digest {loaded.digest}")


@policy_app.command("explain")
@friendly
def explain(
    facts_file: Annotated[
        Path, typer.Argument(help="A TOML file of query facts (the fields of QueryFacts).")
    ],
    bundle: BundleOpt,
) -> None:
    """Show which rules fire for a query's facts, and why."""
    from comity.policy.engine import PolicyEngine
    from comity.policy.facts import QueryFacts
    from comity.policy.select import load_bundle

    try:
        data = tomllib.loads(facts_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgument(f"cannot read facts from {facts_file}: {exc}") from None
    facts = QueryFacts.from_mapping(data.get("facts", data))
    engine = PolicyEngine(load_bundle(bundle))
    decision = engine.decide(facts)
    table = Table(title=f"{engine.bundle.name} {engine.bundle.version}")
    for col in ("rule", "fires", "why"):
        table.add_column(col, overflow="fold")
    for line in engine.explain(facts):
        table.add_row(line.rule_id, "[red]yes[/]" if line.fired else "no", line.why)
    console.print(table)
    verdict = "[green]ALLOWED[/]" if decision.allowed else f"[red]REFUSED[/] ({', '.join(decision.codes)})"
    console.print(f"decision: {verdict}")


@policy_app.command("keep")
@friendly
def keep(
    bundle: Annotated[str, typer.Argument(help="A shipped bundle's name or a bundle folder.")],
    store: Annotated[Path, typer.Option(help="The bundle store: the [policy] store folder of the configs.")],
) -> None:
    """Copy a bundle (after checking it) into a bundle store, where components find it by digest.

    The federation file's agreements name bundles by digest; a gateway or node finds each one in
    its ``[policy] store`` folder (or among the shipped bundles).
    """
    from comity.policy.bundle_store import BundleStore
    from comity.policy.select import load_bundle

    loaded = load_bundle(bundle)
    folder = BundleStore(store).keep(loaded)
    console.print(f"[green]✓[/] {loaded.name} {loaded.version} kept in {folder}")
    console.print(f"digest {loaded.digest}")
