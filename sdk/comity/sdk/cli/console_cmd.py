"""`comity audit console`: the legal officers' web console over a verified local mirror of the log."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from comity.core.errors import ConfigError, InvalidArgument
from comity.sdk.cli.audit_cmd import DbOpt, FederationOpt, PinOpt, UrlOpt, _url, audit_app, say_followed
from comity.sdk.cli.root import console, friendly

__all__ = ["console_command"]


def _default_mirror(origin: str, country: str | None) -> Path:
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in origin)
    name = f"{safe}-{country}.db" if country else f"{safe}.db"
    return Path.home() / ".local" / "state" / "comity" / "console" / name


def _reader(trust: Any, token: Any, country: str | None, audience: str) -> str | None:
    """The country whose officers the mirror is for: the sync token's officer's, else ``--country``."""
    if token is None:
        return country.upper() if country else None
    from datetime import UTC, datetime

    from comity.core.tokens import TokenVerifier

    officer = TokenVerifier(trust.federation, audience=audience).verify_legal_officer(
        token(), now=datetime.now(UTC)
    )
    if country and country.upper() != officer.country:
        raise InvalidArgument(
            f"--country {country} but the token is of {officer.subject}, an officer of {officer.country}",
            hint="the gateway serves what the token's country may read: drop --country or use its token",
        )
    return str(officer.country)


def _source(
    trust: Any, *, gateway: str | None, ca: Path | None, token: Any, db: Path | None, url: str | None
) -> Any:
    from comity.sdk.console.sources import DatabaseSource, GatewaySource

    if gateway is not None:
        if db is not None or url is not None:
            raise InvalidArgument("give --gateway, or --db / --url (a copy of the log database), not both")
        if ca is None:
            raise InvalidArgument("--gateway needs --ca, the CA that issued the gateway's certificate")
        return GatewaySource(gateway, root_certificates=ca.read_bytes(), token=token)
    return DatabaseSource(_url(db, url), quorum=trust.quorum, log_key=trust.log_key)


@audit_app.command("console")
@friendly
def console_command(
    federation: FederationOpt,
    gateway: Annotated[str | None, typer.Option(help="Sync through this gateway's AuditLog service.")] = None,
    ca: Annotated[
        Path | None, typer.Option(help="With --gateway: the CA of the gateway's certificate.")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="Your legal officer's token; read again whenever it nears expiry.")
    ] = None,
    token_command: Annotated[
        str | None,
        typer.Option(help="A command that prints a fresh token (run when the token nears expiry)."),
    ] = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    mirror: Annotated[
        Path | None, typer.Option(help="The mirror file (default: under ~/.local/state).")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Sync and verify once, print progress, and exit.")
    ] = False,
    host: Annotated[str, typer.Option(help="Where to listen (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8450,
    tls_cert: Annotated[Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's private key (PEM).")] = None,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Consent to listen on an address that is not loopback.")
    ] = False,
    unsafe_without_tls: Annotated[
        bool,
        typer.Option(
            "--unsafe-without-tls", help="With --allow-remote: serve plain HTTP (test networks only)."
        ),
    ] = False,
    audience: Annotated[str, typer.Option(help="The audience officers' tokens carry.")] = "comity-gateway",
    interval: Annotated[float, typer.Option(min=1, help="Seconds between sync rounds.")] = 10.0,
    country: Annotated[
        str | None,
        typer.Option(
            help="Keep only what this country's legal officers may read (with --gateway: the token's "
            "country); only its officers may sign in."
        ),
    ] = None,
    mirror_check_every: Annotated[
        int,
        typer.Option(
            min=1, help="Recheck the whole mirror every N rounds (and every round after a failure)."
        ),
    ] = 6,
    federation_sha256: PinOpt = "",
) -> None:
    """Sync a verified mirror of the log in the background and serve it as a web application.

    The mirror is verified against the federation file only: the newest quorum checkpoint, a
    consistency proof from the last one verified, every entry against it. The mirror keeps the
    federation version it was verified under and takes another file only as its signed next
    version (the first one: the one --federation-sha256 names, when given). Officers sign in with
    their own token. It listens on loopback unless told otherwise, and refuses other addresses
    without TLS.
    """
    from comity.core.federation import Federation
    from comity.sdk.console.mirror import Mirror, held_federation
    from comity.sdk.console.sync import BackgroundSync, OfficerToken
    from comity.sdk.console.trust import ConsoleTrust, TrustFollower
    from comity.sdk.console.verifier import MirrorVerifier

    token = None
    if gateway is not None:
        if token_file is None and token_command is None:
            raise InvalidArgument(
                "syncing through the gateway needs a legal officer's token",
                hint="give --token-file (read again when it nears expiry) or --token-command",
            )
        token = OfficerToken(file=token_file, command=token_command)
    from comity.audit.readers import Readership

    # The file as given names the default mirror; the mirror's kept version decides what is trusted.
    given = ConsoleTrust.of(Federation.load(federation))
    path = mirror or _default_mirror(given.log_key.name, _reader(given, token, country, audience))
    trust = ConsoleTrust.load(federation, held=held_federation(path), pin=federation_sha256)
    assert trust.followed is not None
    say_followed(trust.followed, federation)
    reader = _reader(trust, token, country, audience)
    store = Mirror(path, country_of=trust.country_of, reader=reader)
    store.keep_federation(trust.followed.data)
    source = _source(trust, gateway=gateway, ca=ca, token=token, db=db, url=url)

    def progress(done: int, total: int) -> None:
        if once:
            console.print(f"  {done} of {total} entries fetched and staged", highlight=False)

    verifier = MirrorVerifier(
        store,
        source,
        log_key=trust.log_key,
        quorum=trust.quorum,
        progress=progress,
        readership=Readership.of_federation(trust.federation),
    )
    if once:
        try:
            verifier.check_mirror()
            result = verifier.sync()
        finally:
            source.close()
        console.print(
            f"[green]✓ verified[/] the mirror up to size {result.size} ({result.added} new entries) "
            f"against a checkpoint cosigned by {', '.join(result.witnesses)}"
        )
        _print_readable(verifier, reader, result.size)
        console.print(f"  mirror: {store.path}")
        return
    follower = TrustFollower(federation, trust, keep=store.keep_federation)
    _serve(
        follower,
        store,
        BackgroundSync(
            verifier, interval=interval, check_every=mirror_check_every, before_round=follower.check
        ),
        source,
        locals(),
    )


def _print_readable(verifier: Any, reader: str | None, size: int) -> None:
    withheld = verifier.readable.withheld
    if reader is not None:
        console.print(
            f"  kept for {reader}'s legal officers: {withheld} entr{'y' if withheld == 1 else 'ies'} "
            "withheld (other agreements' entries: verified by leaf hash, not readable)",
            highlight=False,
        )
    for label, count, fingerprint in verifier.readable.summary():
        console.print(
            f"  readable by {label}: {count} entr{'y' if count == 1 else 'ies'}, fingerprint "
            f"{fingerprint[:16]} (up to size {size}; the other parties' officers must see the same)",
            highlight=False,
        )


def _serve(follower: Any, store: Any, sync: Any, source: Any, opts: dict[str, Any]) -> None:
    try:
        import uvicorn

        from comity.audit.receipt_trust import FederationTrust
        from comity.sdk.console.app import Console, make_app
        from comity.sdk.console.auth import Sessions
        from comity.sdk.console.report import offence_classifier
        from comity.sdk.console.server import BindPolicy, check_bind
        from comity.sdk.console.sources import DatabaseSource
        from comity.sdk.console.words import load_rule_texts, shipped_bundles
    except ImportError as exc:
        raise ConfigError(
            f"the console's web application needs the console extra ({exc.name} is missing)",
            hint="pip install 'comity[console]'",
        ) from None

    policy = BindPolicy(
        opts["host"], opts["tls_cert"], opts["tls_key"], opts["allow_remote"], opts["unsafe_without_tls"]
    )
    for warning in check_bind(policy):
        console.print(f"[bold red]{warning}[/]")
    trust = follower.current
    pages = Console(
        mirror=store,
        sync=sync,
        sessions=Sessions(trust.federation, audience=opts["audience"], country=store.reader),
        log_origin=trust.log_key.name,
        rule_texts=load_rule_texts(),
        secure_cookies=policy.tls_cert is not None,
        offence_class=offence_classifier(set(trust.country_of.values()), shipped_bundles()),
        receipt_trust=FederationTrust(trust.federation),
    )

    def follow(new: Any) -> None:
        # Keys, the witness quorum, who may sign in and receipts follow the new version; which
        # agreement's entries the mirror keeps readable is decided at start.
        sync.verifier.log_key, sync.verifier.quorum = new.log_key, new.quorum
        if isinstance(source, DatabaseSource):  # a gateway judges its own; a copy is judged here
            source.use_trust(quorum=new.quorum, log_key=new.log_key)
        pages.receipt_trust = FederationTrust(new.federation)
        ended = pages.sessions.use_federation(new.federation)
        if ended:
            logging.getLogger("comity.sdk.console").warning(
                "%d session(s) ended: their officers are not listed in version %s",
                ended,
                new.federation.version,
            )

    follower.on_change(follow)
    app = make_app(pages)
    scheme = "https" if policy.tls_cert else "http"
    console.print(
        f"console on {scheme}://{policy.host}:{opts['port']}/ (Ctrl-C stops it); mirror {store.path}"
    )
    logging.basicConfig(level=logging.INFO)
    try:
        uvicorn.run(
            app,
            host=policy.host,
            port=opts["port"],
            ssl_certfile=str(policy.tls_cert) if policy.tls_cert else None,
            ssl_keyfile=str(policy.tls_key) if policy.tls_key else None,
            log_level="warning",
            # Query strings may name an investigator or an order: no access log.
            access_log=False,
        )
    finally:
        source.close()
