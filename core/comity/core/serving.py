"""Running a Comity gRPC server: health, reflection, limits, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from comity.core.decoding import DecodeGuard
from comity.core.errors import ConfigError
from comity.core.grpcopts import (
    DEFAULT_HANDSHAKE_TIMEOUT_SECONDS,
    DEFAULT_IDLE_TIMEOUT_SECONDS,
    DEFAULT_MAX_MESSAGE_BYTES,
    server_options,
)
from comity.core.reflection import enable_reflection
from comity.core.rpc_telemetry import TelemetryServerInterceptor

__all__ = ["ServerHandle", "start_server", "wait_for_termination"]

_log = logging.getLogger("comity.serving")


@dataclass
class ServerHandle:
    """A started server: its bound port, and the health servicer to flip on shutdown."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    services: Sequence[str]
    on_stop: list[Callable[[], object]] = field(default_factory=list)
    health_server: grpc.aio.Server | None = None
    health_port: int | None = None

    async def stop(self, grace: float = 5.0) -> None:
        """Mark NOT_SERVING, let calls in flight finish within ``grace`` seconds, then stop."""
        for name in ("", *self.services):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(0)
        for hook in self.on_stop:
            result = hook()
            if asyncio.iscoroutine(result):
                await result


async def start_server(
    *,
    listen: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    credentials: grpc.ServerCredentials,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    health_listen: str = "",
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_SECONDS,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT_SECONDS,
) -> ServerHandle:
    """Start a TLS server on ``listen`` ("host:port"; port 0 picks a free one).

    ``register`` adds the component's servicers; health checking and reflection are added
    for every server, so operators and load balancers can probe any of them the same way.
    ``health_listen``, when set, also serves the health service alone without TLS: probes
    (Kubernetes' ``grpc:`` probes cannot present the client certificate a node requires)
    learn whether the server is up and nothing else.

    Every method of the server answers an undecodable request with INVALID_ARGUMENT
    (:class:`~comity.core.decoding.DecodeGuard`); connections idle for ``idle_timeout``
    seconds, or not through their handshake in ``handshake_timeout``, are closed.
    """
    options = server_options(
        max_message_bytes, idle_timeout=idle_timeout, handshake_timeout=handshake_timeout
    )
    server = grpc.aio.server(options=options, interceptors=[DecodeGuard(), TelemetryServerInterceptor()])
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection((*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
    try:
        port = server.add_secure_port(listen, credentials)
    except RuntimeError:
        port = 0
    if port == 0:
        # grpc reports a failed bind without its cause; in use or not local are the two there are.
        raise ConfigError(
            f"cannot listen on {listen}: the address is in use (another process serves it?) or not local",
            field="listen",
            hint="stop the other process, or give this one its own port",
        )
    await server.start()
    handle = ServerHandle(server, port, health_servicer, service_names)
    if health_listen:
        handle.health_server, handle.health_port = await _start_health_only(
            health_listen, health_servicer, options
        )
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    _log.info("listening on port %d", port)
    return handle


async def _start_health_only(
    listen: str, servicer: health.aio.HealthServicer, options: list[tuple[str, int | str]]
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=options, interceptors=[DecodeGuard()])
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen on {listen}: {exc}", field="health_listen") from None
    await server.start()
    return server, port


async def wait_for_termination(handle: ServerHandle, *, grace: float = 5.0) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(handle.server.wait_for_termination())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    _log.info("shutting down")
    await handle.stop(grace)
    for task in (waiter, stopper):
        task.cancel()
