"""The gateway's client certificate followed on disk: channels showing another one are replaced.

Every ``every`` seconds the client certificate and key files are looked at
(:meth:`~comity.core.tls_reload.GatewayClientTls.check`: a stat, and a read when they changed).
Whenever a node's channel shows a certificate other than the one in use, the routes of the
federation version in use are built again: those nodes get a new channel showing it, and the
old one closes once the calls sent on it have ended (:mod:`comity.gateway.node_channels`).
The channels to the independent witnesses are renewed the same way
(:meth:`~comity.gateway.independent_witnesses.IndependentWitnesses.renew`): each witness whose
channel shows another certificate gets a new one for the next round, and the old one closes once
the calls sent on it have ended. Comparing what the channels show, rather than reacting to the
change alone, also catches channels that a federation version prepared with the previous
certificate put in use meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from comity.core.federation import Federation
from comity.core.tasks import cancel_and_wait
from comity.core.tls_reload import GatewayClientTls
from comity.gateway.independent_witnesses import IndependentWitnesses
from comity.gateway.node_channels import routes_of
from comity.gateway.routing import NodeRouter

__all__ = ["follow_client_certificate", "renew_channels"]

_log = logging.getLogger("comity.gateway.routing")


def renew_channels(client: GatewayClientTls, router: NodeRouter, current: Federation) -> None:
    """Give every node whose channel shows another client certificate a channel showing ``client``'s."""
    if router.client_identities() - {client.identity}:
        router.use_endpoints(routes_of(current, client))


def follow_client_certificate(
    client: GatewayClientTls,
    router: NodeRouter,
    current: Callable[[], Federation],
    *,
    every: float,
    witnesses: IndependentWitnesses | None = None,
) -> Callable[[], Awaitable[None]]:
    """Look at the client certificate every ``every`` seconds and renew the channels to the nodes
    and to ``witnesses`` that show another; returns the hook that stops it."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.to_thread(client.check)
                renew_channels(client, router, current())
                if witnesses is not None:
                    await witnesses.renew()
            except Exception:  # the next look tries again; the channels in use stay
                _log.exception("could not follow the gateway's client certificate")

    task = asyncio.get_running_loop().create_task(loop(), name="client-certificate")

    async def stop() -> None:
        await cancel_and_wait(task)

    return stop
