"""comity gateway check | serve."""

from __future__ import annotations

import asyncio

from comity.sdk.cli.root import ConfigOpt, console, err_console, friendly, gateway_app, print_policies


@gateway_app.command("check")
@friendly
def gateway_check(config: ConfigOpt) -> None:
    """Check the config, its keys and certificates against the federation, and the policy bundle."""
    from comity.core.federation import Federation
    from comity.core.selfcheck import check_certificate_pinned, check_key_listed
    from comity.gateway.config import load_gateway_config
    from comity.policy.agreements import load_policies

    cfg = load_gateway_config(config)
    console.print(f"[green]✓[/] config {config}")
    federation = Federation.load(cfg.federation)
    gateway = federation.gateway
    console.print(
        f"[green]✓[/] federation {federation.name} lists gateway {gateway.id} at {gateway.endpoint}"
    )
    check_key_listed(cfg.decision_key, gateway.decision_key, what="decision key", field="keys.decision_key")
    check_key_listed(cfg.log_key, gateway.log.key, what="log key", field="keys.log_key")
    console.print("[green]✓[/] decision and log keys are the ones the federation lists")
    check_certificate_pinned(cfg.tls_cert, gateway.server_pins, what="server certificate")
    check_certificate_pinned(cfg.client_cert, gateway.client_pins, what="client certificate")
    console.print("[green]✓[/] server and client certificates pinned by the federation")
    policies = load_policies(
        federation,
        store=cfg.bundle_store,
        configured=cfg.policy_bundle,
        digest_of=lambda agreement: agreement.bundle_digest,
        build=lambda bundle: bundle,
        what="gateway",
    )
    print_policies(policies)


@gateway_app.command("serve")
@friendly
def gateway_serve(config: ConfigOpt) -> None:
    """Serve the gateway until SIGTERM or SIGINT."""
    from comity.core.serving import wait_for_termination
    from comity.core.telemetry import setup_telemetry
    from comity.gateway.config import load_gateway_config
    from comity.gateway.server import start_gateway

    cfg = load_gateway_config(config)
    telemetry = setup_telemetry(cfg.telemetry)

    async def run() -> None:
        gateway = await start_gateway(cfg)
        gateway.handle.on_stop.append(telemetry.shutdown)
        err_console.print(f"gateway serving on port {gateway.handle.port}")
        await wait_for_termination(gateway.handle)

    asyncio.run(run())
