"""`comity audit`: the legal officers' tools — verify, show, export, verify a receipt.

Every command takes the federation file, which names the log's key and the witnesses' keys:
what is verified is checked against those, never against keys the log itself supplies.
Exit status 0 only when everything verifies.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from comity.core.errors import ConfigError, InvalidArgument
from comity.sdk.cli.root import app, console, err_console, friendly
from comity.sdk.cli.timerange import TimeRange, parse_range

audit_app = typer.Typer(help="Verify and read the transparency log (legal officers).", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

FederationOpt = Annotated[
    Path, typer.Option("--federation", "-f", help="The federation file (names the log and witness keys).")
]
DbOpt = Annotated[
    Path | None, typer.Option("--db", help="A log database file (SQLite), e.g. DIR/data/audit.db.")
]
UrlOpt = Annotated[
    str | None, typer.Option("--url", help="A log database URL (sqlite:/// or postgresql://).")
]
PinOpt = Annotated[
    str,
    typer.Option(
        "--federation-sha256",
        help="The SHA-256 of the first federation file version you trust, agreed out of band; "
        "checked while your state holds no version yet.",
    ),
]


def _keys(federation: Path) -> tuple[Any, list[Any]]:
    from comity.audit.log import witness_verifiers
    from comity.core.federation import Federation
    from comity.sdk.receipts import log_verifier

    fed = Federation.load(federation)
    return log_verifier(fed), witness_verifiers(fed.witness_keys())


def _url(db: Path | None, url: str | None) -> str:
    if (db is None) == (url is None):
        raise InvalidArgument("give exactly one of --db, --url or --gateway")
    if db is not None:
        if not db.exists():
            raise ConfigError(f"no log database at {db}")
        return f"sqlite:///{db.resolve()}"
    assert url is not None
    return url


def _officer_token(token_file: Path | None) -> str:
    """A legal officer's bearer token: COMITY_TOKEN wins over --token-file, as in profiles."""
    env = os.environ.get("COMITY_TOKEN", "").strip()
    if env:
        return env
    if token_file is None:
        raise InvalidArgument(
            "reading the log's entries through the gateway needs a legal officer's token",
            hint="give --token-file or set COMITY_TOKEN (a token from your agency's identity provider)",
        )
    try:
        return token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read token file {token_file}: {exc.strerror}") from None


def _default_state(log_key: Any) -> Path:
    # One file per log: its origin and its key (a log re-created under the same name is another log).
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in log_key.name)
    return Path.home() / ".local" / "state" / "comity" / f"{safe}-{log_key.key_id:08x}.checkpoint"


@audit_app.command("verify")
@friendly
def verify(
    federation: FederationOpt,
    db: DbOpt = None,
    url: UrlOpt = None,
    gateway: Annotated[
        str | None, typer.Option(help="A gateway address, to verify through its AuditLog service.")
    ] = None,
    ca: Annotated[
        Path | None, typer.Option(help="With --gateway: the CA of the gateway's certificate.")
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(help="With --gateway: your legal officer's token (or set COMITY_TOKEN)."),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(help="The last checkpoint you accepted (default: under ~/.local/state/comity)."),
    ] = None,
    witness_view: Annotated[
        list[Path] | None,
        typer.Option(
            help="A witness's latest cosigned checkpoint (from `comity witness latest`); repeatable. "
            "The log must contain each one."
        ),
    ] = None,
    evidence: Annotated[
        Path | None, typer.Option(help="Where to write the two checkpoints proving a fork, if one is found.")
    ] = None,
    federation_sha256: PinOpt = "",
) -> None:
    """Recompute the tree, check every signature and the witness quorum, and what you saw last.

    The newest checkpoint with a quorum of witness cosignatures (under the federation's witness
    policy) is found; entries after it are "quorum pending" and fail once the oldest has waited
    longer than the policy's max_delay. With --state (default under ~/.local/state/comity), the
    log must still hold what you verified before and still show the quorum's cosignatures. With
    --witness-view, every view must lie on the verified history: otherwise it is a proven fork.

    The state also keeps the federation file version you verified with: a later run takes
    another file only as its next version, signed by the threshold of the kept version's
    [signing] keys (with nothing kept yet, the file must match --federation-sha256 when given).
    """
    from comity.audit.quorum import Quorum
    from comity.core.federation import Federation
    from comity.sdk.receipts import log_verifier

    state = state or _default_state(log_verifier(Federation.load(federation)))
    scratch = _scratch_state(state)  # the state moves on only once the views are checked too
    fed = _follow(federation, scratch, federation_sha256)
    log_key = log_verifier(fed)
    quorum = Quorum.of_federation(fed)
    views = [_witness_view(p, fed, quorum) for p in witness_view or []]
    if gateway is not None:
        from comity.audit.readers import Readership
        from comity.sdk.auditor import AuditClient, verify_remote

        if ca is None:
            raise InvalidArgument("--gateway needs --ca, the CA that issued the gateway's certificate")
        client = AuditClient(gateway, root_certificates=ca.read_bytes(), token=_officer_token(token_file))
        try:
            remote = verify_remote(
                client,
                log_key=log_key,
                state=scratch,
                quorum=quorum,
                readership=Readership.of_federation(fed),
            )
            if views:
                head = client.checkpoint(remote.tree_size).checkpoint.signed_note
                _check_views(views, remote.tree_size, remote.root_hash, head, client.consistency, evidence)
        finally:
            client.close()
        size, root, previous, pinned = (
            remote.tree_size,
            remote.root_hash,
            remote.previous_size,
            remote.pinned_size,
        )
        quorum_size, cosigners = remote.quorum_size, remote.cosigned_by
        pending, since = remote.pending_entries, remote.pending_since
        withheld, readable = remote.withheld, remote.readable
    else:
        from comity.audit.verify import verify_log

        location = _url(db, url)
        report = verify_log(location, verifier_key=log_key, state=scratch, quorum=quorum)
        if views:
            from comity.audit.store import LogStore

            store = LogStore.open(location, create=False)
            try:
                head = store.checkpoint(report.tree_size)
                _check_views(
                    views, report.tree_size, report.root_hash, head, store.consistency_proof, evidence
                )
            finally:
                store.close()
        size, root, previous, pinned = (
            report.tree_size,
            report.root_hash,
            report.previous_size,
            report.pinned_size,
        )
        quorum_size, cosigners = report.quorum_size, report.quorum_witnesses
        pending, since = report.pending_entries, report.pending_since
        withheld, readable = 0, ()
    if scratch.exists():
        scratch.replace(state)
    console.print(f"[green]✓ verified[/] {size} entries; root {root.hex()}")
    console.print(f"  every checkpoint is signed by {log_key.name}; every cosignature verifies")
    if quorum_size is None:
        console.print("  [yellow]no checkpoint carries a witness quorum yet[/]")
    else:
        console.print(f"  witness quorum on checkpoint {quorum_size}: cosigned by {', '.join(cosigners)}")
    if pending:
        age = (datetime.now(UTC) - since).total_seconds() if since else 0.0
        console.print(
            f"  [yellow]quorum pending[/] for {pending} entr{'y' if pending == 1 else 'ies'} after it "
            f"(the oldest logged {age:.0f} s ago; bound {quorum.max_delay.total_seconds():g} s)"
        )
    if pinned is not None:
        console.print(f"  holds the checkpoint of size {pinned} your own node cosigned (pinned)")
    if gateway is not None:
        _print_readable(withheld, readable, size)
    for view in views:
        console.print(
            f"  contains the checkpoint of size {view.checkpoint.size} that {', '.join(view.witnesses)} "
            "cosigned (witness view)"
        )
    if previous is None:
        console.print(f"  first verification from here: remembered the checkpoint in {state}")
    else:
        console.print(f"  consistent with the checkpoint of size {previous} you accepted before")


def _print_readable(withheld: int, readable: tuple[tuple[str, int, str], ...], size: int) -> None:
    if withheld:
        console.print(
            f"  {withheld} entr{'y' if withheld == 1 else 'ies'} withheld from you (agreements your "
            "country is not party to): verified by leaf hash, not readable"
        )
    for label, count, fingerprint in readable:
        console.print(
            f"  readable by {label}: {count} entr{'y' if count == 1 else 'ies'}, "
            f"fingerprint {fingerprint[:16]} (up to size {size}; "
            "the other parties' officers must see the same)",
            highlight=False,
        )


def _follow(federation: Path, scratch: Path, pin: str) -> Any:
    """The federation version to verify with, as the state allows; kept in ``scratch`` (the state
    takes it only if the whole run verifies)."""
    from dataclasses import replace

    from comity.audit.verifystate import VerifierState
    from comity.core.federation_chain import follow

    held = VerifierState.load(scratch)
    followed = follow(federation, held.federation, pin=pin, now=datetime.now(UTC))
    say_followed(followed, federation)
    if followed.data != held.federation:
        replace(held, federation=followed.data).save(scratch)
    return followed.federation


def say_followed(followed: Any, path: Path) -> None:
    """One line on which federation version is trusted and why (stderr, so output stays the report's)."""
    from comity.core.federation_chain import Change

    fed = followed.federation
    what = f"federation {fed.name!r} version {fed.version} ({path}, sha256 {followed.sha256[:16]}…)"
    if followed.change is Change.FIRST_USE:
        err_console.print(
            f"[yellow]trusting {what} on first use[/]: nothing checked it; compare its SHA-256 "
            f"{followed.sha256} with the one your federation's operators published, or give "
            "--federation-sha256",
            highlight=False,
            soft_wrap=True,
        )
    elif followed.change is Change.NEXT:
        err_console.print(
            f"trusting {what}: signed by the threshold of the version kept before", highlight=False
        )


def _scratch_state(state: Path) -> Path:
    import shutil

    scratch = state.with_name(state.name + ".verifying")
    scratch.unlink(missing_ok=True)
    if state.exists():
        shutil.copyfile(state, scratch)
    return scratch


def _witness_view(path: Path, fed: Any, quorum: Any) -> Any:
    from comity.audit.errors import LogVerificationError
    from comity.audit.witness_views import open_witness_view

    try:
        note = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the witness view {path}: {exc.strerror}") from None
    try:
        log = fed.gateway.log
        return open_witness_view(note, origin=log.origin, log_keys=log.keys, quorum=quorum)
    except LogVerificationError as exc:
        raise LogVerificationError(f"{path}: {exc.message}") from None


def _check_views(
    views: list[Any], size: int, root: bytes, head: bytes, consistency: Any, evidence: Path | None
) -> None:
    from comity.audit.checkpoint import Checkpoint
    from comity.audit.errors import LogVerificationError
    from comity.audit.note import Note
    from comity.audit.witness_views import ForkProven, check_witness_views

    top = Checkpoint.from_text(Note.parse(head).text)
    if (top.size, top.root_hash) != (size, root):
        raise LogVerificationError("the log's checkpoint changed while it was being verified; verify again")
    try:
        check_witness_views(views, head=top, head_note=head, consistency=consistency)
    except ForkProven as exc:
        if evidence is not None:
            evidence.write_bytes(exc.evidence)
            exc.message += f" (both checkpoints written to {evidence})"
        raise


@audit_app.command("pin")
@friendly
def pin(
    federation: FederationOpt,
    node: Annotated[str, typer.Option(help="Your own country's node id, e.g. gb-node.")],
    witness_state: Annotated[
        Path,
        typer.Option(help="That node's witness state file, read on the node (never through the gateway)."),
    ],
    state: Annotated[
        Path | None,
        typer.Option(help="Your verifier state (default: under ~/.local/state/comity), as for verify."),
    ] = None,
    federation_sha256: PinOpt = "",
) -> None:
    """Pin the checkpoint your own node's witness last cosigned: every later verify must find that tree."""
    from comity.audit.errors import AuditError, LogVerificationError
    from comity.audit.quorum import Quorum, note_cosignatures
    from comity.audit.verifystate import VerifierState
    from comity.audit.witness import read_latest_cosigned
    from comity.core.federation import Federation
    from comity.sdk.receipts import log_verifier

    state = state or _default_state(log_verifier(Federation.load(federation)))
    scratch = _scratch_state(state)
    fed = _follow(federation, scratch, federation_sha256)
    log_key = log_verifier(fed)
    quorum = Quorum.of_federation(fed)
    own = fed.witness_identity(node)
    note = read_latest_cosigned(witness_state)
    if note is None:
        raise LogVerificationError(f"the witness of {node} has not cosigned any checkpoint yet")
    try:
        signed = quorum.open(note, log_key)
        ids = quorum.cosigners(signed.text, [c.line() for c in note_cosignatures(note, log_key.name)])
    except AuditError as exc:
        raise LogVerificationError(
            f"the checkpoint in {witness_state} does not verify: {exc.message}"
        ) from None
    if own.id not in ids:
        raise LogVerificationError(f"the checkpoint in {witness_state} carries no cosignature of {node}")
    VerifierState.load(scratch).with_notes(pinned=note).save(scratch)
    scratch.replace(state)
    size = signed.checkpoint.size
    console.print(
        f"[green]✓ pinned[/] checkpoint {size} of {log_key.name}, cosigned by {node} ({own.country})"
    )
    console.print(f"  root {signed.checkpoint.root_hash.hex()}; every later verify with {state} must find it")


def _events(url: str) -> Any:
    from comity.audit.events import decode_event
    from comity.audit.store import LogStore

    store = LogStore.open(url, create=False)
    try:
        for index, _leaf, data in store.iter_entries(store.tree_size()):
            yield index, decode_event(data), store
    finally:
        store.close()


_ALWAYS = TimeRange(None, None)
SinceOpt = Annotated[
    str | None, typer.Option(help="From this date or time (ISO 8601; UTC unless a zone is given).")
]
UntilOpt = Annotated[
    str | None, typer.Option(help="Up to this date or time, inclusive (a date: the whole day).")
]


def _matches(event: Any, *, order: str | None, agency: str | None, investigator: str | None,
             decision: str | None, period: TimeRange) -> bool:  # fmt: skip
    def field(name: str) -> str:
        return str(getattr(event, name, ""))

    at = datetime.fromisoformat(field("at").replace("Z", "+00:00")) if field("at") else None
    return (
        (order is None or field("order_id") == order)
        and (agency is None or field("agency") == agency)
        and (investigator is None or field("investigator") == investigator)
        and (decision is None or field("decision") == decision.upper())
        and (period == _ALWAYS or (at is not None and period.holds(at)))
    )


def _opening_line(opening: Any) -> str:
    from comity.audit.events import RULES_OPENING

    if opening.selector_type == RULES_OPENING:
        # The real rule ids behind a generic code: the requester never sees this line.
        return "sealed rules: " + ", ".join(json.loads(opening.value)["rule_codes"])
    return f"{opening.selector_type}: {opening.value}"


@audit_app.command("show")
@friendly
def show(
    db: DbOpt = None,
    url: UrlOpt = None,
    order: Annotated[str | None, typer.Option(help="Only this legal order id.")] = None,
    agency: Annotated[str | None, typer.Option(help="Only this requesting agency.")] = None,
    investigator: Annotated[str | None, typer.Option(help="Only this investigator.")] = None,
    decision: Annotated[str | None, typer.Option(help="ALLOW or DENY.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From this date or time (ISO 8601; UTC unless a zone is given).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Up to this date or time, inclusive (a date: the whole day).")
    ] = None,
    open_selectors: Annotated[
        bool, typer.Option("--open", help="Open the selector commitments (needs access to the openings).")
    ] = False,
) -> None:
    """List log entries, filtered; with --open, show the selectors behind the commitments."""
    table = Table()
    for col in ("#", "time", "event", "who", "order / node", "outcome", "detail"):
        table.add_column(col, overflow="fold")
    period = parse_range(since, until)
    for index, event, store in _events(_url(db, url)):
        if not _matches(
            event,
            order=order,
            agency=agency,
            investigator=investigator,
            decision=decision,
            period=period,
        ):
            continue
        who = getattr(event, "investigator", "") or getattr(event, "node", "")
        where = getattr(event, "order_id", "") or getattr(event, "node", "")
        outcome = (
            getattr(event, "decision", "")
            or getattr(event, "reason", "")
            or getattr(event, "reason_code", "")
        )
        detail = ", ".join(getattr(event, "rule_codes", ()) or ())
        if event.kind == "disclosed":
            outcome = "HIT" if event.hit else "no hit"
            detail = f"{event.record_count} record(s)"
        if open_selectors and event.kind == "decision":
            detail += "".join(f"\n{_opening_line(o)}" for o in store.openings(index))
        table.add_row(str(index), event.at, event.kind, who, where, outcome, detail)
    console.print(table)


@audit_app.command("export")
@friendly
def export(
    db: DbOpt = None,
    url: UrlOpt = None,
    out: Annotated[Path | None, typer.Option(help="Write here instead of standard output.")] = None,
) -> None:
    """Every entry as JSON Lines: {"index": N, "event": {...}}."""
    from dataclasses import asdict

    lines = (
        json.dumps({"index": index, "event": {"kind": event.kind, **asdict(event)}}, sort_keys=True)
        for index, event, _ in _events(_url(db, url))
    )
    if out is None:
        for line in lines:
            typer.echo(line)
    else:
        with out.open("w", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line + "\n")
        console.print(f"exported to {out}")


@audit_app.command("emergencies")
@friendly
def emergencies(
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every emergency order used, its validation deadline and its review; exit 1 if any is overdue."""
    from datetime import UTC

    from comity.audit.emergencies import EmergencyRecord

    record = EmergencyRecord()
    for _, event, _ in _events(_url(db, url)):
        record.apply(event)
    now = datetime.now(UTC)
    rows = [
        {
            "order_id": u.order_id,
            "agency": u.agency,
            "issued_by": u.authority,
            "first_used": u.first_used.isoformat(),
            "validate_by": u.validate_by.isoformat(),
            "status": u.describe(now),
            "reviewed_by": u.reviewed_by,
        }
        for u in record
    ]
    if as_json:
        console.print_json(json.dumps(rows))
    elif not rows:
        console.print("no emergency order has been used")
    else:
        table = Table("order", "agency", "issued by", "first used", "validate by", "status", "reviewed by")
        for r in rows:
            style = "bold red" if r["status"] in ("OVERDUE", "rejected", "rejected (late)") else None
            table.add_row(*(str(v) for v in r.values()), style=style)
        console.print(table)
    if any(r["status"] == "OVERDUE" for r in rows):
        raise typer.Exit(1)


@audit_app.command("prune")
@friendly
def prune(
    db: DbOpt = None,
    url: UrlOpt = None,
    older_than_days: Annotated[
        int, typer.Option(min=1, help="The legal retention period in days (Prüm: 730).")
    ] = 730,
    hold: Annotated[
        list[str] | None,
        typer.Option(help="An order id under legal hold (audit pending): its openings are kept. Repeatable."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, delete nothing.")] = False,
) -> None:
    """Delete selector openings and justification signatures of decisions past retention (entries stay)."""
    from datetime import UTC, timedelta

    from comity.audit.retention import prune_openings
    from comity.audit.store import LogStore

    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    store = LogStore.open(_url(db, url), create=False)
    try:
        report = prune_openings(store, cutoff=cutoff, hold_orders=set(hold or ()), dry_run=dry_run)
    finally:
        store.close()
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"{report.entries_before_cutoff} entries before {cutoff.date().isoformat()}: {verb} the selector "
        f"openings of {report.decisions_pruned} decision(s) ({report.openings_deleted} rows); "
        f"{report.decisions_held} held"
    )
    console.print(f"  {verb} {report.signatures_deleted} justification signature(s) of those decisions")
    console.print("  entries, checkpoints and proofs are untouched: the log still verifies")


@audit_app.command("report")
@friendly
def report(
    db: DbOpt = None,
    url: UrlOpt = None,
    since: Annotated[
        str | None, typer.Option(help="From this date or time (ISO 8601; UTC unless a zone is given).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Up to this date or time, inclusive (a date: the whole day).")
    ] = None,
    bundle: Annotated[
        list[str] | None,
        typer.Option(
            help="A bundle (name or folder) whose offence catalogue classes offences; repeatable. "
            "Default: every shipped gateway bundle."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV: one row per count.")] = False,
) -> None:
    """A transparency report: aggregate counts by agency, node, offence class, category and outcome."""
    from comity.policy.pairing import shipped_bundles
    from comity.policy.select import load_bundle
    from comity.sdk.transparency import build_report

    bundles = (
        [load_bundle(b) for b in bundle]
        if bundle
        else [b for b in shipped_bundles() if b.manifest.scope == "gateway"]
    )
    # An offence code names its class in whichever country's catalogue lists it.
    classes = {o.code: o.category for b in bundles for o in b.catalogue}

    def offence_class(code: str) -> str:
        return classes.get(code, "UNKNOWN")

    events = (event for _, event, _ in _events(_url(db, url)))
    period = parse_range(since, until)
    result = build_report(events, offence_class=offence_class, since=period.since, until=period.until)
    if as_json:
        console.print_json(json.dumps(result.to_json()))
        return
    if as_csv:
        sys.stdout.write(result.to_csv())
        return
    table = Table(title="Queries decided")
    for col in ("requesting agency", "responding node", "offence class", "decision", "queries"):
        table.add_column(col, justify="right" if col == "queries" else "left")
    for (agency, node, offence, decision), count in sorted(result.decisions.items()):
        table.add_row(agency, node, offence, decision, str(count))
    console.print(table)
    pairs = Table(title="Queries decided per agreement and pair of countries")
    for col in ("agreement", "requesting", "responding", "decision", "queries"):
        pairs.add_column(col, justify="right" if col == "queries" else "left")
    for (agreement, requesting, responding, decision), count in sorted(result.agreements.items()):
        pairs.add_row(agreement or "(none listed)", requesting, responding, decision, str(count))
    console.print(pairs)
    categories = Table(title="Data categories asked for")
    for col in ("category", "decision", "queries"):
        categories.add_column(col)
    for (category, decision), count in sorted(result.categories.items()):
        categories.add_row(category, decision, str(count))
    console.print(categories)
    for node, count in sorted(result.disclosures.items()):
        console.print(f"{node}: {count} answer(s), {result.records_disclosed[node]} record(s) disclosed")
    for agency, count in sorted(result.refused_before_policy.items()):
        console.print(f"{agency}: {count} request(s) refused before a policy decision")
    for agency, count in sorted(result.no_agreement.items()):
        console.print(f"{agency}: {count} request(s) refused: no agreement covers the pair of countries")
    for node, count in sorted(result.failures.items()):
        console.print(f"{node}: {count} allowed quer(ies) not completed")
    for agency, count in sorted(result.emergencies.items()):
        reviews = ", ".join(
            f"{n} {outcome}" for (a, outcome), n in sorted(result.emergency_reviews.items()) if a == agency
        )
        console.print(f"{agency}: {count} emergency order(s) used; reviews: {reviews or 'none yet'}")


@audit_app.command("serve")
@friendly
def serve(
    federation: FederationOpt,
    db: DbOpt = None,
    url: UrlOpt = None,
    host: Annotated[str, typer.Option(help="Where to listen (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8450,
) -> None:
    """A read-only web viewer of the log, verified against the federation's keys."""
    from comity.audit.quorum import Quorum
    from comity.audit.verify import verify_log
    from comity.core.federation import Federation
    from comity.sdk.viewer import LogViewer, make_server

    log_key, _ = _keys(federation)
    quorum = Quorum.of_federation(Federation.load(federation))
    location = _url(db, url)

    def verify() -> str:
        # The same verification as `comity audit verify`: key histories and the witness quorum.
        report = verify_log(location, verifier_key=log_key, quorum=quorum)
        witnessed = (
            "no checkpoint carries a witness quorum yet"
            if report.quorum_size is None
            else f"witness quorum on checkpoint {report.quorum_size} "
            f"({', '.join(report.quorum_witnesses)}), {report.pending_entries} entries quorum pending"
        )
        return (
            f"verified {report.tree_size} entries: every checkpoint signed by {log_key.name}, "
            f"{report.cosignatures} witness cosignature(s); {witnessed}"
        )

    server = make_server(LogViewer(location, verify), host, port)
    console.print(f"log viewer on http://{host}:{server.server_address[1]}/ (Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
