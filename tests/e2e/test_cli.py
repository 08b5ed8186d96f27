"""The command line against a running federation: query, node and policy commands."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from comity.sdk.cli.main import EXIT_REFUSED, app
from comity.sdk.demo.run import RunningFederation, scenarios

pytestmark = pytest.mark.asyncio(loop_scope="module")

runner = CliRunner()


async def _invoke(args: list[str]) -> tuple[int, str]:
    result = await asyncio.to_thread(runner.invoke, app, args, env={"COLUMNS": "250"})
    return result.exit_code, result.output


def _query_args(running: RunningFederation, title: str) -> list[str]:
    fed = running.federation
    s = next(s for s in scenarios(fed) if s.title.startswith(title))
    order = fed.orders.get(s.order.order_id) or fed.sign_order(s.order, now=datetime.now(UTC))
    args = ["query", "--profile", str(fed.profiles[s.agency]), "--node", s.node, "--order", str(order)]
    args += ["--kind", s.kind, "--case", "CLI-1", "--facts", s.facts, "--link", s.link]
    args += ["--since", s.time_range[0].isoformat(), "--until", s.time_range[1].isoformat()]
    for t in s.order.selector_types:
        args += ["--selector", f"{t.name.lower()}:{s.person.selectors[t]}"]
    for c in s.categories:
        args += ["--category", c.lower()]
    return args


async def test_query_prints_json_records_and_restrictions(running: RunningFederation) -> None:
    code, out = await _invoke([*_query_args(running, "RCMP fetches"), "--json"])
    assert code == 0, out
    data = json.loads(out)
    assert data["node"] == "us-node"
    assert data["records"]
    assert {u["code"] for u in data["use_restrictions"]}
    assert len(data["receipt"]["log_entries"]) == 3  # decision, node decision, disclosure


async def test_refused_query_exits_3_with_every_rule(running: RunningFederation) -> None:
    code, out = await _invoke([*_query_args(running, "FBI asks about a minor"), "--json"])
    assert code == EXIT_REFUSED
    data = json.loads(out)
    assert "SERIOUS_CRIME" in [r["code"] for r in data["rules"]]


async def test_bad_selector_on_the_command_line_is_explained(running: RunningFederation) -> None:
    args = _query_args(running, "RCMP fetches")
    args[args.index("--selector") + 1] = "passport:X123"
    code, out = await _invoke(args)
    assert code == 1
    assert "unknown selector type" in out


async def test_node_stats_and_check(running: RunningFederation) -> None:
    config = str(running.federation.node_configs["ca-node"])
    code, out = await _invoke(["node", "stats", "-c", config])
    assert code == 0, out
    assert "subscriber_account" in out
    code, out = await _invoke(["node", "check", "-c", config])
    assert code == 0, out
    assert "passes its tests" in out


async def test_policy_check_and_explain(running: RunningFederation) -> None:
    code, out = await _invoke(["policy", "check", "ca-inbound"])
    assert code == 0, out
    assert "digest sha256:" in out
    # A bundle's own test defaults make a complete set of facts for `explain`.
    import tomllib

    from comity.policy.bundle import bundle_path

    defaults = tomllib.loads((bundle_path("us-ca-agreement") / "tests.toml").read_text())["defaults"]
    defaults["order_offence_code"] = "18 USC 1030(a)(2)"
    facts = running.federation.directory / "facts.toml"
    lines = [
        f"{k} = {json.dumps(v) if not isinstance(v, datetime) else v.isoformat()}"
        for k, v in defaults.items()
    ]
    facts.write_text("\n".join(lines) + "\n")
    code, out = await _invoke(["policy", "explain", str(facts), "--bundle", "us-ca-agreement"])
    assert code == 0, out
    assert "SERIOUS_CRIME" in out and "REFUSED" in out
