"""`comity audit verify-receipt` and `comity audit receipt refresh`: a query's receipt, checked offline.

Both check the receipt against the verifier's own federation file (its key histories and witness
quorum), never against keys the receipt or the gateway supplies. Exit status 0 only when the
receipt verifies in full; a receipt whose checkpoint lacks the witness quorum fails with
"quorum pending" unless ``--allow-quorum-pending`` is given.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from comity.core.errors import InvalidArgument
from comity.sdk.cli.audit_cmd import FederationOpt, PinOpt, audit_app, say_followed
from comity.sdk.cli.root import console, friendly

if TYPE_CHECKING:
    from comity.audit.receipt import VerifiedReceipt

receipt_app = typer.Typer(help="Receipts of queries: refresh to a quorum checkpoint.", no_args_is_help=True)
audit_app.add_typer(receipt_app, name="receipt")

ReceiptArg = Annotated[Path, typer.Argument(help="A receipt file exported by the SDK (export_receipt).")]


def _report(verified: VerifiedReceipt, origin: str) -> None:
    from comity.sdk.receipts import describe_receipt

    for line in describe_receipt(verified):
        console.print(f"  {line}")
    console.print(
        f"  {verified.entry_count} log entries, each included in checkpoint {verified.tree_size} of {origin}"
    )
    witnesses = ", ".join(verified.witnesses) or "none"
    if verified.quorum_pending:
        console.print(
            f"  [yellow]quorum pending[/]: {verified.quorum.describe_missing()} (cosigned by: {witnesses})"
        )
    else:
        console.print(f"  witness quorum reached: cosigned by {witnesses}")


@audit_app.command("verify-receipt")
@friendly
def verify_receipt_cmd(
    receipt: ReceiptArg,
    federation: FederationOpt,
    allow_quorum_pending: Annotated[
        bool,
        typer.Option(
            "--allow-quorum-pending",
            help="Accept a checkpoint not yet cosigned by the witness quorum (says so; exit 0).",
        ),
    ] = False,
    state: Annotated[
        Path | None,
        typer.Option(
            help="Your verifier state (as for `comity audit verify`): the federation version it keeps "
            "decides which file is trusted, and a signed next version is kept once the receipt verifies.",
        ),
    ] = None,
    federation_sha256: PinOpt = "",
) -> None:
    """Check a receipt offline: every entry of the query, the node's signature, the witness quorum.

    Without --state or --federation-sha256 the federation file is taken as it is.
    """
    from dataclasses import replace
    from datetime import UTC, datetime

    from comity.audit.receipt import verify_query_receipt
    from comity.audit.receipt_trust import FederationTrust
    from comity.audit.verifystate import VerifierState
    from comity.core.federation import Federation
    from comity.core.federation_chain import follow
    from comity.core.federation_sign import verify_pinned
    from comity.sdk.receipts import load_receipt

    now = datetime.now(UTC)
    kept = VerifierState.load(state) if state is not None else None
    if kept is not None:
        followed = follow(federation, kept.federation, pin=federation_sha256, now=now)
        say_followed(followed, federation)
        fed = followed.federation
    elif federation_sha256:
        fed = verify_pinned(federation, federation_sha256, now=now)
    else:
        fed = Federation.load(federation)
    verified = verify_query_receipt(
        load_receipt(receipt), FederationTrust(fed), require_quorum=not allow_quorum_pending
    )
    if state is not None and kept is not None and followed.data != kept.federation:
        replace(kept, federation=followed.data).save(state)
    console.print(
        f"[green]✓ receipt verified[/] against checkpoint {verified.tree_size} of {fed.gateway.log.origin}"
    )
    _report(verified, fed.gateway.log.origin)


@receipt_app.command("refresh")
@friendly
def refresh_cmd(
    receipt: ReceiptArg,
    federation: FederationOpt,
    gateway: Annotated[str, typer.Option(help="The gateway address (its AuditLog service).")],
    ca: Annotated[Path, typer.Option(help="The CA that issued the gateway's certificate.")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write the refreshed receipt (default: over RECEIPT).")
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            min=0, help="Seconds to wait for the witnesses when no quorum checkpoint covers it yet."
        ),
    ] = 0.0,
) -> None:
    """Upgrade a receipt to a newer quorum-cosigned checkpoint: fresh proofs, consistency checked."""
    from comity.audit.receipt import QuorumPending
    from comity.audit.receipt_trust import FederationTrust
    from comity.core.federation import Federation
    from comity.sdk.receipt_refresh import GatewayCheckpoints, refresh_receipt
    from comity.sdk.receipts import export_receipt, load_receipt

    fed = Federation.load(federation)
    try:
        root = ca.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the gateway's CA {ca}: {exc.strerror}") from None
    source = GatewayCheckpoints(gateway, root_certificates=root)
    deadline = time.monotonic() + wait
    original = load_receipt(receipt)
    try:
        while True:
            try:
                refreshed, verified = refresh_receipt(original, FederationTrust(fed), source)
                break
            except QuorumPending:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    finally:
        source.close()
    target = export_receipt(refreshed, out or receipt)
    console.print(f"[green]✓ receipt refreshed[/] to checkpoint {verified.tree_size}; written to {target}")
    _report(verified, fed.gateway.log.origin)
