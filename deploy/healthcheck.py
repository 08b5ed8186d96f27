#!/usr/bin/env python3
"""A gRPC health probe for containers: exit 0 when the server answers SERVING, 1 otherwise.

    comity-healthcheck [ADDRESS] [--service NAME] [--ca FILE] [--server-name NAME]

ADDRESS defaults to $COMITY_HEALTH_ADDR or 127.0.0.1:8081, the plaintext health-only port.
With --ca the probe speaks TLS instead, which works against the gateway's investigator port;
a node's port asks for the gateway's client certificate, so probe a node on its health port.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def probe(address: str, *, service: str = "", ca: Path | None = None, server_name: str = "") -> bool:
    """Whether ``address`` answers SERVING for ``service`` within three seconds."""
    if ca is None:
        channel = grpc.insecure_channel(address)
    else:
        options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
        channel = grpc.secure_channel(address, credentials, options=options)
    with channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=3
            )
        except grpc.RpcError as err:
            print(f"unhealthy: {err.code().name}", file=sys.stderr)
            return False
    serving: bool = answer.status == health_pb2.HealthCheckResponse.SERVING
    if not serving:
        print(
            f"unhealthy: {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}", file=sys.stderr
        )
    return serving


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, probe once, and return the exit status."""
    parser = argparse.ArgumentParser(description="Probe a Comity server's gRPC health service.")
    parser.add_argument("address", nargs="?", default=os.environ.get("COMITY_HEALTH_ADDR", "127.0.0.1:8081"))
    parser.add_argument("--service", default="", help="a service name; empty means the whole server")
    parser.add_argument("--ca", type=Path, help="CA certificate: probe over TLS instead of plaintext")
    parser.add_argument("--server-name", default="", help="the name the TLS certificate carries")
    args = parser.parse_args(argv)
    return 0 if probe(args.address, service=args.service, ca=args.ca, server_name=args.server_name) else 1


if __name__ == "__main__":
    sys.exit(main())
