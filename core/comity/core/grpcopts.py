"""gRPC channel and server options shared by every Comity process."""

from __future__ import annotations

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT_SECONDS",
    "DEFAULT_IDLE_TIMEOUT_SECONDS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "channel_options",
    "server_options",
]

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024

# A client pinging more often than the server allows gets its connection dropped with
# "too_many_pings": keep the client's interval at or above the server's minimum.
_KEEPALIVE_MS = 30_000
# gRPC's default reconnect back-off grows towards 120 s, and a call on a channel waiting to
# retry fails at once: a node back from a restart (or one that started after the gateway)
# would stay "unavailable" long after it is up. Federation links are few and long-lived,
# so retrying often costs nothing.
_RECONNECT_MIN_MS = 100
_RECONNECT_MAX_MS = 1_000
_SERVER_MIN_PING_MS = 20_000

#: A connection without calls for this long is closed by the server (GOAWAY).
DEFAULT_IDLE_TIMEOUT_SECONDS = 300.0
#: A connection that has not finished its TLS and HTTP/2 handshake in this long is closed.
DEFAULT_HANDSHAKE_TIMEOUT_SECONDS = 10.0
# The server pings a connection with calls in flight this often, and closes it when no answer
# comes in the timeout, so a vanished client does not hold its streams forever.
_SERVER_KEEPALIVE_MS = 60_000
_SERVER_KEEPALIVE_TIMEOUT_MS = 20_000


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int | str]]:
    """Options for a long-lived client channel."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", _KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.initial_reconnect_backoff_ms", _RECONNECT_MIN_MS),
        ("grpc.min_reconnect_backoff_ms", _RECONNECT_MIN_MS),
        ("grpc.max_reconnect_backoff_ms", _RECONNECT_MAX_MS),
    ]


def server_options(
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_SECONDS,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT_SECONDS,
) -> list[tuple[str, int | str]]:
    """Options for a Comity server: message limits, idle and handshake timeouts, keepalive."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_connection_idle_ms", int(idle_timeout * 1000)),
        ("grpc.server_handshake_timeout_ms", int(handshake_timeout * 1000)),
        ("grpc.keepalive_time_ms", _SERVER_KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", _SERVER_KEEPALIVE_TIMEOUT_MS),
        ("grpc.http2.min_ping_interval_without_data_ms", _SERVER_MIN_PING_MS),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.keepalive_permit_without_calls", 0),
        # gRPC turns SO_REUSEPORT on by default: a second process on the same port would then
        # start silently and share the traffic, two writers that nobody notices. Off, it fails.
        ("grpc.so_reuseport", 0),
    ]
