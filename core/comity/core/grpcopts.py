"""gRPC channel and server options shared by every Comity process."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "channel_options", "server_options"]

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024

# A client pinging more often than the server allows gets its connection dropped with
# "too_many_pings": keep the client's interval at or above the server's minimum.
_KEEPALIVE_MS = 30_000
_SERVER_MIN_PING_MS = 20_000


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int | str]]:
    """Options for a long-lived client channel."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", _KEEPALIVE_MS),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 0),
    ]


def server_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int | str]]:
    """Options for a Comity server."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.http2.min_ping_interval_without_data_ms", _SERVER_MIN_PING_MS),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.keepalive_permit_without_calls", 0),
        # gRPC turns SO_REUSEPORT on by default: a second process on the same port would then
        # start silently and share the traffic, two writers that nobody notices. Off, it fails.
        ("grpc.so_reuseport", 0),
    ]
