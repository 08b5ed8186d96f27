"""Serving the console: loopback by default; anywhere else only with TLS and the officer's consent."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

from comity.core.errors import InvalidArgument

__all__ = ["BindPolicy", "check_bind", "is_loopback"]

_log = logging.getLogger("comity.console")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class BindPolicy:
    """Where to listen and how: TLS files, and the two explicit consents a non-loopback address needs."""

    host: str
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_remote: bool = False
    unsafe_without_tls: bool = False


def check_bind(policy: BindPolicy) -> list[str]:
    """Refuse an unsafe address (raises :class:`InvalidArgument`); returns warnings to print loudly."""
    if (policy.tls_cert is None) != (policy.tls_key is None):
        raise InvalidArgument("give both --tls-cert and --tls-key, or neither")
    if is_loopback(policy.host):
        return []
    if not policy.allow_remote:
        raise InvalidArgument(
            f"the console would listen on {policy.host}, which is not a loopback address: other machines "
            "could reach the log's entries",
            hint="listen on 127.0.0.1 (the default), or add --allow-remote if you mean it",
        )
    if policy.tls_cert is None and not policy.unsafe_without_tls:
        raise InvalidArgument(
            f"the console refuses to serve {policy.host} without TLS: sign-in tokens and session cookies "
            "would cross the network in clear",
            hint="give --tls-cert and --tls-key, or (for a closed test network only) --unsafe-without-tls",
        )
    warnings = [f"WARNING: the console listens on {policy.host}, reachable from other machines"]
    if policy.tls_cert is None:
        warnings.append("WARNING: WITHOUT TLS: tokens and session cookies travel in clear on the network")
    for line in warnings:
        _log.warning(line)
    return warnings
