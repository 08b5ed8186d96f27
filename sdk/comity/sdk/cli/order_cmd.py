"""``comity order``: an authority issues a signed legal order; anyone can check one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from comity.core.errors import InvalidArgument
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.core.order_file import read_envelope, read_order_description, write_envelope
from comity.core.orders import sign_order, verify_order
from comity.sdk.cli._common import errors_exit, passphrase_from_env, stdout
from comity.v1 import comity_pb2 as pb

__all__ = ["app"]

app = typer.Typer(help="Issue and check signed legal orders.", no_args_is_help=True)


@app.command("sign")
def sign(
    description: Annotated[Path, typer.Argument(help="The order, as TOML or JSON (see docs/security.md).")],
    key: Annotated[Path, typer.Option(help="The authority's Ed25519 private key file.")],
    out: Annotated[Path, typer.Option(help="Where to write the signed envelope.")],
    authority: Annotated[
        str, typer.Option(help="The authority id the key is registered under (default: the order's).")
    ] = "",
    json: Annotated[
        bool | None, typer.Option("--json/--binary", help="Envelope format (default: by suffix).")
    ] = None,
    passphrase_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the key's passphrase.")
    ] = None,
) -> None:
    """Sign an order with the authority's key and write the envelope to attach to queries."""
    with errors_exit():
        order = read_order_description(description)
        signing_key = SigningKey.load(
            key, key_id=authority or order.issuing_authority, passphrase=passphrase_from_env(passphrase_env)
        )
        envelope = sign_order(order, signing_key)
        write_envelope(envelope, out, as_json=json)
    stdout.print(f"signed order [bold]{order.order_id}[/] as {signing_key.key_id} → {out}")


@app.command("verify")
def verify(
    envelope: Annotated[Path, typer.Argument(help="A signed order envelope (binary or JSON).")],
    federation: Annotated[Path, typer.Option(help="The federation file.")],
    at: Annotated[str, typer.Option(help="Check validity at this ISO 8601 time (default: now).")] = "",
) -> None:
    """Check an order's signature, authority and validity window; print what it authorises."""
    with errors_exit():
        fed = Federation.load(federation)
        now = _when(at) if at else datetime.now(UTC)
        verified = verify_order(read_envelope(envelope), fed, now=now)
    order = verified.order
    stdout.print(
        f"order {order.order_id}: valid, signed by {verified.authority.name} ({verified.authority.id})"
    )
    stdout.print(
        f"  offence {order.offence_code}, {order.authorisation_type} authorisation by {order.authorised_by}"
    )
    stdout.print(
        f"  valid {order.valid_from.ToDatetime(tzinfo=UTC)} to {order.valid_until.ToDatetime(tzinfo=UTC)}"
    )
    stdout.print(f"  {len(order.selectors)} selector(s); categories: {_categories(order)}")


def _when(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"--at {text!r} is not an ISO 8601 time", hint="e.g. 2026-11-28T12:00:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _categories(order: pb.LegalOrder) -> str:
    return ", ".join(pb.DataCategory.Name(c) for c in order.categories)
