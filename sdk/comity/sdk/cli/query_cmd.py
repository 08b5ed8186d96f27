"""`comity query`: one query from the command line, with a readable or JSON answer."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from comity.core.errors import ComityError, InvalidArgument
from comity.sdk.cli.render import (
    dumps,
    error_json,
    print_attempts,
    print_error,
    print_private_result,
    print_result,
    private_result_json,
    result_json,
)
from comity.sdk.cli.root import EXIT_ERROR, EXIT_REFUSED, app, console, err_console
from comity.sdk.private import load_precedent, save_precedent
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec, parse_selector, read_order_file


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"{text!r} is not an ISO 8601 date or time", hint="e.g. 2026-01-31") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@app.command("query")
def query(
    profile: Annotated[
        Path, typer.Option("--profile", "-p", help="Investigator profile (TOML).", envvar="COMITY_PROFILE")
    ],
    node: Annotated[
        str,
        typer.Option("--node", "-n", help="Target node id, e.g. gb-node."),
    ],
    selector: Annotated[
        list[str], typer.Option("--selector", "-s", help="TYPE:VALUE, e.g. email:a@example.org (repeatable).")
    ],
    order: Annotated[
        Path, typer.Option("--order", "-o", help="The signed legal order (from `comity order sign`).")
    ],
    category: Annotated[
        list[str], typer.Option("--category", help="subscriber, traffic or content (repeatable).")
    ] = ["subscriber"],  # noqa: B006
    kind: Annotated[
        str, typer.Option("--kind", help="hit-check, fetch or private-hit-check (the node sees no selector).")
    ] = "fetch",
    case: Annotated[str, typer.Option("--case", help="Your case reference.")] = "",
    facts: Annotated[str, typer.Option("--facts", help="Articulable facts justifying the query.")] = "",
    link: Annotated[str, typer.Option("--link", help="How the target is linked to the offence.")] = "",
    since: Annotated[str | None, typer.Option(help="Start of the time range (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="End of the time range (ISO 8601).")] = None,
    max_records: Annotated[
        int, typer.Option(min=0, help="At most this many records (0: the node's cap).")
    ] = 0,
    hit_reference: Annotated[str, typer.Option(help="The reference a hit check returned.")] = "",
    keep_precedent: Annotated[
        Path | None,
        typer.Option(help="Private hit check: keep what a FETCH after a hit needs in this file (mode 0600)."),
    ] = None,
    after_private: Annotated[
        Path | None,
        typer.Option(help="FETCH after a private hit: the file --keep-precedent wrote."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Submit one signed query through the gateway and show the verified answer."""
    try:
        start, end = _when(since), _when(until)
        spec = QuerySpec(
            target_node=node,
            selectors=[parse_selector(s) for s in selector],
            categories=category,
            kind=kind,
            case_reference=case,
            facts=facts,
            link_to_offence=link,
            legal_order=read_order_file(order),
            time_range=(start or datetime(1970, 1, 1, tzinfo=UTC), end or datetime.now(UTC))
            if (start or end)
            else None,
            max_records=max_records,
            hit_reference=hit_reference,
        )
        private = kind.lower().replace("_", "-") == "private-hit-check"
        if keep_precedent is not None and not private:
            raise InvalidArgument(
                "--keep-precedent is for a private hit check", hint="use it with --kind private-hit-check"
            )
        if after_private is not None:
            if spec.kind.lower() != "fetch" or hit_reference:
                raise InvalidArgument(
                    "--after-private is for a FETCH without a hit reference",
                    hint="use it with --kind fetch, and leave out --hit-reference",
                )
            spec = dataclasses.replace(
                spec, private_precedent=load_precedent(after_private, node=node, selectors=spec.selectors)
            )
        with load_profile(profile).client() as client:
            if private:
                answer = client.private_hit_check(spec)
                if keep_precedent is not None:
                    save_precedent(answer, keep_precedent)
            else:
                result = client.query(spec)
    except ComityError as err:
        if as_json:
            console.print_json(dumps(error_json(err)))
        else:
            print_error(err_console, err)
        if err.remote:  # a gateway's answer after a resubmission (a local error names its attempts)
            print_attempts(err_console, err.attempts)
        raise typer.Exit(EXIT_REFUSED if err.code.name == "PERMISSION_DENIED" else EXIT_ERROR) from None
    # On stderr, so that stdout stays the answer alone (JSON for scripts).
    print_attempts(err_console, answer.attempts if private else result.attempts)
    if private:
        if as_json:
            console.print_json(dumps(private_result_json(answer)))
        else:
            print_private_result(console, answer)
    elif as_json:
        console.print_json(dumps(result_json(result)))
    else:
        print_result(console, result)
