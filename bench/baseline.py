"""The baseline: a bare ``grpc.aio`` two-hop proxy, client → proxy → echo backend.

It does what any Python gateway must do and nothing more: accept a TLS call, make one call
over a long-lived mutual-TLS channel, answer. Payloads are opaque bytes of the sizes Comity's
messages have on each hop (no parsing, no checks), and the TLS settings, certificates and
channel options are Comity's own (the demo federation's gateway and node certificates, built
by the same credential functions), so the gap to Comity is the cost of its work.

Each server runs in its own process, as the gateway and node do::

    python -m bench.baseline backend --federation F --node us-node --reply-bytes N
    python -m bench.baseline proxy --federation F --node us-node --client-cert C --client-key K \\
        --cert S --key SK --backend HOST:PORT --forward-bytes N --reply-bytes N
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import grpc

from comity.core.federation import Federation
from comity.core.grpcopts import channel_options, server_options
from comity.core.tls import gateway_server_credentials, node_channel_credentials, node_server_credentials

__all__ = ["METHOD", "baseline_call", "main"]

METHOD = "/bench.Echo/Call"
_SERVICE, _NAME = METHOD.strip("/").split("/")


def _handler(
    respond: Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], Awaitable[bytes]],
) -> grpc.GenericRpcHandler:
    # No (de)serializers: the request and answer stay bytes, the cheapest a handler can be.
    return grpc.method_handlers_generic_handler(
        _SERVICE, {_NAME: grpc.unary_unary_rpc_method_handler(respond)}
    )


async def _serve(server: grpc.aio.Server, listen: str, credentials: grpc.ServerCredentials) -> None:
    port = server.add_secure_port(listen, credentials)
    await server.start()
    # The bench waits for this line, as it does for Comity's servers.
    print(f"baseline serving on port {port}", file=sys.stderr, flush=True)
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(0)


async def backend(args: argparse.Namespace) -> None:
    """The echo backend, with the node's certificate, requiring the gateway's client certificate."""
    federation = Federation.load(args.federation)
    node = federation.node(args.node)
    reply: bytes = b"r" * int(args.reply_bytes)

    async def respond(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return reply

    server = grpc.aio.server(options=server_options())
    server.add_generic_rpc_handlers((_handler(respond),))
    credentials = node_server_credentials(node.tls_cert, args.key, federation=federation)
    await _serve(server, args.listen, credentials)


async def proxy(args: argparse.Namespace) -> None:
    """The proxy: the gateway's server certificate in front, mutual TLS to the backend."""
    federation = Federation.load(args.federation)
    node = federation.node(args.node)
    options = channel_options()
    options.append(("grpc.ssl_target_name_override", node.host))
    channel = grpc.aio.secure_channel(
        args.backend, node_channel_credentials(node, args.client_cert, args.client_key), options=options
    )
    forward: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
    outbound = b"f" * int(args.forward_bytes)
    reply_bytes = int(args.reply_bytes)
    pad = b"a" * reply_bytes

    async def respond(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        answer = await forward(outbound, timeout=10.0)
        # The gateway answers with the node's result plus its receipt: a reply of that size.
        return answer + pad[: max(0, reply_bytes - len(answer))]

    server = grpc.aio.server(options=server_options())
    server.add_generic_rpc_handlers((_handler(respond),))
    credentials = gateway_server_credentials(args.cert, args.key, federation=federation)
    try:
        await _serve(server, args.listen, credentials)
    finally:
        await channel.close()


def baseline_call(
    channel: grpc.aio.Channel, *, request_bytes: int, metadata: Sequence[tuple[str, str]]
) -> Callable[[], Awaitable[object]]:
    """One client call of the baseline: the request's size and metadata are Comity's."""
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
    payload = b"q" * request_bytes
    meta = tuple(metadata)

    async def once() -> object:
        return await call(payload, timeout=30.0, metadata=meta)

    return once


def main(argv: Sequence[str] | None = None) -> None:
    """Run the backend or the proxy until SIGTERM."""
    parser = argparse.ArgumentParser(description="Baseline two-hop proxy servers")
    sub = parser.add_subparsers(dest="role", required=True)
    b = sub.add_parser("backend")
    p = sub.add_parser("proxy")
    for sp in (b, p):
        sp.add_argument("--federation", type=Path, required=True)
        sp.add_argument("--node", required=True, help="the node whose certificate the backend shows")
        sp.add_argument("--listen", default="127.0.0.1:0")
        sp.add_argument("--reply-bytes", type=int, required=True)
    b.add_argument("--key", type=Path, required=True, help="the node's TLS key")
    p.add_argument("--cert", type=Path, required=True, help="the gateway's server certificate")
    p.add_argument("--key", type=Path, required=True, help="the gateway's server key")
    p.add_argument("--client-cert", type=Path, required=True)
    p.add_argument("--client-key", type=Path, required=True)
    p.add_argument("--backend", required=True, help="host:port of the backend")
    p.add_argument("--forward-bytes", type=int, required=True)
    args = parser.parse_args(argv)

    async def run() -> None:
        task = asyncio.create_task(backend(args) if args.role == "backend" else proxy(args))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
