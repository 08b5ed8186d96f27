"""``comity order``: an authority issues a signed legal order; anyone can check one.

For the emergency track, ``validate`` lets a judicial or independent authority sign its
after-the-fact review of an emergency order, and ``submit-validation`` lets an investigator of
the agency that used the order hand that review to the gateway.
"""

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
from comity.core.target import target_facts
from comity.sdk.cli._common import errors_exit, passphrase_from_env, stdout
from comity.v1 import comity_pb2 as pb

__all__ = ["app"]

app = typer.Typer(help="Issue and check signed legal orders.", no_args_is_help=True)


@app.command("sign")
def sign(
    description: Annotated[
        Path, typer.Argument(help="The order, as TOML or JSON (see docs/investigators.md).")
    ],
    key: Annotated[Path, typer.Option(help="The authority's Ed25519 private key file.")],
    out: Annotated[Path, typer.Option(help="Where to write the signed envelope.")],
    nationality: Annotated[
        list[str] | None,
        typer.Option(help="A nationality of the target (ISO 3166-1 alpha-2); repeat for each one."),
    ] = None,
    residence: Annotated[
        list[str] | None, typer.Option(help="A country the target resides in; repeat for each one.")
    ] = None,
    location: Annotated[
        list[str] | None,
        typer.Option(help="A country the target is believed to be located in; repeat for each one."),
    ] = None,
    target_kind: Annotated[
        str | None, typer.Option(help="natural-person or legal-person (a company).")
    ] = None,
    incorporated_in: Annotated[
        str, typer.Option(help="A legal person's country of incorporation (ISO 3166-1 alpha-2).")
    ] = "",
    third_government: Annotated[
        bool | None,
        typer.Option(
            "--not-for-third-government/--for-third-government",
            help="Attest the query is (not) made for the responding or a third government.",
        ),
    ] = None,
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
    """Sign an order with the authority's key and write the envelope to attach to queries.

    The target facts come from the description's [target] table, or from the options
    (--nationality, --residence, --location, --target-kind, --incorporated-in and
    --not-for-third-government), never from both, and none of them has a default.
    """
    with errors_exit():
        target = _target(nationality, residence, location, target_kind, incorporated_in, third_government)
        order = read_order_description(description, target=target)
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
    stdout.print(f"  target: {_describe_target(order.target)}")


@app.command("validate")
def validate(
    order: Annotated[
        Path, typer.Argument(help="The emergency order's signed envelope, exactly as it was used.")
    ],
    key: Annotated[Path, typer.Option(help="The reviewing authority's Ed25519 private key file.")],
    authority: Annotated[str, typer.Option(help="The reviewing authority's id in the federation.")],
    out: Annotated[Path, typer.Option(help="Where to write the signed validation.")],
    reject: Annotated[
        bool, typer.Option("--reject", help="The emergency was not justified (default: confirm it).")
    ] = False,
    json: Annotated[
        bool | None, typer.Option("--json/--binary", help="Envelope format (default: by suffix).")
    ] = None,
    passphrase_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the key's passphrase.")
    ] = None,
) -> None:
    """Sign a judicial or independent authority's review of an emergency order (confirm or reject)."""
    from comity.core.emergency import sign_validation, validation_for

    with errors_exit():
        validation = validation_for(read_envelope(order), authority=authority, confirmed=not reject)
        signing_key = SigningKey.load(key, key_id=authority, passphrase=passphrase_from_env(passphrase_env))
        write_envelope(sign_validation(validation, signing_key), out, as_json=json)
    verdict = "rejected" if reject else "confirmed"
    stdout.print(f"{verdict} emergency order [bold]{validation.order_id}[/] as {authority} → {out}")


@app.command("submit-validation")
def submit_validation(
    validation: Annotated[Path, typer.Argument(help="The signed validation ('comity order validate').")],
    profile: Annotated[
        Path, typer.Option("--profile", "-p", help="Investigator profile (TOML).", envvar="COMITY_PROFILE")
    ],
) -> None:
    """Hand an authority's review of an emergency order your agency used to the gateway, which logs it."""
    from comity.sdk.profile import load_profile

    with errors_exit():
        envelope = read_envelope(validation)
        with load_profile(profile).client() as client:
            logged = client.validate_emergency(envelope)
    outcome = "confirmed" if logged.confirmed else "rejected"
    timing = "after the deadline" if logged.late else "in time"
    stdout.print(
        f"emergency order [bold]{logged.order_id}[/]: {outcome} by {logged.authority}, {timing}; "
        "logged, receipt verified"
    )
    if not logged.confirmed:
        stdout.print("[bold red]the data disclosed under this order must be deleted[/]")


def _when(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"--at {text!r} is not an ISO 8601 time", hint="e.g. 2026-11-28T12:00:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _target(
    nationalities: list[str] | None,
    residences: list[str] | None,
    locations: list[str] | None,
    kind: str | None,
    incorporated_in: str,
    not_for_third_government: bool | None,
) -> pb.TargetFacts | None:
    """The target facts from the options, or None when no target option is given."""
    given = (nationalities, residences, locations, kind, incorporated_in or None, not_for_third_government)
    if all(v is None for v in given):
        return None
    missing = [
        option
        for option, value in (
            ("--nationality", nationalities),
            ("--residence", residences),
            ("--location", locations),
            ("--target-kind", kind),
            ("--not-for-third-government or --for-third-government", not_for_third_government),
        )
        if value is None
    ]
    if missing:
        raise InvalidArgument(
            f"the target facts need {', '.join(missing)} as well",
            hint="every target fact is attested explicitly; nothing has a default",
        )
    assert kind is not None and not_for_third_government is not None
    try:
        return target_facts(
            nationalities=nationalities or (),
            residences=residences or (),
            locations=locations or (),
            kind=kind,
            incorporated_in=incorporated_in,
            not_for_third_government=not_for_third_government,
        )
    except ValueError as exc:
        message = str(exc)
        for field, option in _OPTIONS.items():
            message = message.replace(field, option)
        raise InvalidArgument(message) from None


_OPTIONS = {
    "target.nationalities": "--nationality",
    "target.residences": "--residence",
    "target.locations": "--location",
    "target.incorporated_in": "--incorporated-in",
    "target.kind": "--target-kind",
}


def _describe_target(target: pb.TargetFacts) -> str:
    kind = "legal person" if target.kind == pb.LEGAL_PERSON else "natural person"
    if target.incorporated_in:
        kind += f" incorporated in {target.incorporated_in}"
    parts = [
        kind,
        f"nationalities {', '.join(target.nationalities)}",
        f"residences {', '.join(target.residences)}",
        f"locations {', '.join(target.locations)}",
        "not for a third government" if target.not_for_third_government else "may be for a third government",
    ]
    return "; ".join(parts)


def _categories(order: pb.LegalOrder) -> str:
    return ", ".join(pb.DataCategory.Name(c) for c in order.categories)
