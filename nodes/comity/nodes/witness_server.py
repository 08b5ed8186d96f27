"""An independent witness (a court, an NGO): the node's witness service on its own, holding no data.

It is a federation file's ``[[witnesses]]`` entry brought to life: its own key (one of its key
history), its own state file, its own mTLS port that admits only the gateway's client
certificate, serving ``comity.v1.Witness`` (C2SP tlog-witness add-checkpoint and the latest
cosigned checkpoint) with exactly the code a node's witness runs. Like a node, it checks its
state against the gateway's log before serving and refuses to start when the state is missing or
older than what the log shows it cosigned (see :mod:`comity.nodes.witness_state`).

While it runs it follows the federation file (``federation_poll_seconds``): each newly trusted
version sets the gateway client certificates it admits, its own certificate's pins, the log key
history it checks checkpoints under (so it cosigns across a log key rotation without a restart)
and the gateway endpoints a held witness compares its state through.

Config (``witness.toml``; relative paths from the file's folder)::

    [witness]
    id = "witness.example-ngo"          # its id in the federation file's [[witnesses]]
    listen = "0.0.0.0:7301"
    federation = "federation.toml"
    state = "/var/lib/comity/witness.db"
    health_listen = "0.0.0.0:8081"       # optional plaintext health port
    federation_poll_seconds = 1.0       # optional; 0 reads the federation file at start only

    [keys]
    witness_key = "keys/witness.key"    # passphrase from COMITY_KEY_PASSPHRASE

    [tls]
    cert = "pki/witness.crt"            # the certificate the federation file pins for it
    key = "pki/witness.key"
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from comity.audit.witness import Witness
from comity.core.configfile import load_toml
from comity.core.errors import ConfigError
from comity.core.federation import Federation
from comity.core.federation_watch import FederationWatch
from comity.core.keys import SigningKey, passphrase_from_env
from comity.core.serving import ServerHandle, start_server
from comity.core.tls_reload import ServerTls
from comity.nodes.witness_service import WitnessService
from comity.nodes.witness_state import HELD, check_witness_state, hold_until_checked
from comity.v1 import comity_pb2 as pb
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["WitnessConfig", "load_witness_config", "start_witness"]

SERVICE = pb.DESCRIPTOR.services_by_name["Witness"].full_name


@dataclass(frozen=True)
class WitnessConfig:
    """What an independent witness needs to start, with paths resolved against the config file."""

    witness_id: str
    listen: str
    federation: Path
    state: Path
    witness_key: Path
    tls_cert: Path
    tls_key: Path
    health_listen: str = ""
    federation_poll_seconds: float = 1.0


def load_witness_config(path: Path) -> WitnessConfig:
    """Read and validate a witness config; ConfigError names the bad field."""
    root = load_toml(path)
    witness, keys, tls = root.table("witness"), root.table("keys"), root.table("tls")
    config = WitnessConfig(
        witness_id=witness.text("id"),
        listen=witness.text("listen"),
        federation=witness.path("federation"),
        state=witness.path("state"),
        health_listen=witness.text("health_listen", ""),
        federation_poll_seconds=witness.number("federation_poll_seconds", 1.0, minimum=0.0),
        witness_key=keys.path("witness_key"),
        tls_cert=tls.path("cert"),
        tls_key=tls.path("key"),
    )
    for section in (witness, keys, tls, root):
        section.done()
    return config


async def start_witness(config: WitnessConfig, *, reinitialise_witness: bool = False) -> ServerHandle:
    """Check the key, certificate and state against the federation and the gateway's log, then serve."""
    federation = Federation.load(config.federation)
    identity = federation.witness_identity(config.witness_id)
    if identity.country is not None:
        raise ConfigError(
            f"{config.witness_id!r} is a node's witness: it runs inside `comity node serve`",
            field="witness.id",
        )
    key = SigningKey.load(config.witness_key, key_id=identity.id, passphrase=passphrase_from_env())
    listed = {k.public_key.public_bytes_raw() for k in identity.keys.at(datetime.now(UTC))}
    if key.verifying_key.public_key.public_bytes_raw() not in listed:
        raise ConfigError(
            f"the witness key is not one the federation file lists for {identity.id!r} now",
            field="keys.witness_key",
            hint="use the key of its current [[witnesses.keys]] entry",
        )
    # Its own certificate follows its files from the next TLS handshake (pinned when the file pins it).
    server_tls = ServerTls.witness(
        config.tls_cert,
        config.tls_key,
        federation=federation,
        witness_id=identity.id,
        passphrase=passphrase_from_env(),
    )
    credentials = server_tls.credentials()
    existed = config.state.exists()
    witness = Witness.open(
        config.state,
        name=identity.name,
        key=key,
        log_origin=federation.gateway.log.origin,
        log_key=federation.gateway.log.key,
        log_keys=federation.gateway.log.keys,
    )
    try:
        checked = await check_witness_state(
            witness,
            existed=existed,
            state=config.state,
            federation=federation,
            node_id=identity.id,
            reinitialise=reinitialise_witness,
        )
    except BaseException:
        witness.close()
        if not existed:
            config.state.unlink(missing_ok=True)  # leave it missing, as it was
        raise
    if not checked:
        witness.hold(HELD)  # before the port opens: nothing is cosigned unchecked
    service = WitnessService(witness, gateway_pins=federation.gateway.client_pins)
    # Newer versions of the file set which gateway client certificates it admits (in the handshake
    # and on each call), its own certificate's pins, the log key history it checks checkpoints
    # under, and the gateway endpoints a held witness asks; its own key and id are read at start.
    watch = FederationWatch(config.federation, federation)
    server_tls.follow(watch)
    watch.prepare_with(lambda new: _follow(new, witness, service))
    handle = await start_server(
        listen=config.listen,
        register=lambda server: pb_grpc.add_WitnessServicer_to_server(service, server),
        service_names=[SERVICE],
        credentials=credentials,
        health_listen=config.health_listen,
    )
    if config.federation_poll_seconds > 0:
        watch.start(config.federation_poll_seconds)
    handle.on_stop.append(watch.stop)
    handle.on_stop.append(witness.close)
    if not checked:  # the gateway was unreachable: cosign nothing until the state is compared
        stop_check = hold_until_checked(
            witness, state=config.state, federation=lambda: watch.current, node_id=identity.id
        )
        handle.on_stop.insert(0, stop_check)
    return handle


def _follow(new: Federation, witness: Witness, service: WitnessService) -> Callable[[], None]:
    """The swap that puts a newly trusted version's log key history and gateway client pins in use."""

    def swap() -> None:
        witness.use_log_keys(new.gateway.log.keys)
        service.use_gateway_pins(new.gateway.client_pins)

    return swap
