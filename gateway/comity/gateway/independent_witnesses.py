"""The gateway's channels to the independent witnesses (``[[witnesses]]``), following the federation file.

Each independent witness that has a ``tls_cert`` gets a channel of its own, with the gateway's
client certificate, trusting exactly its pinned certificate (one without ``tls_cert`` is not
asked, with a warning). For a newly trusted version, :meth:`IndependentWitnesses.prepare` reads
the certificates of the witnesses it adds (or whose endpoint, certificate or pins change) off
the event loop, raising to refuse the version when one does not match its pins, as at start;
:meth:`IndependentWitnesses.use` then opens their channels and closes those of the witnesses the
version no longer lists, after a grace of one call deadline so calls in flight finish. A
witness the version keeps as it was keeps its channel and what the gateway knows of its size.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import grpc

from comity.core.federation import Federation
from comity.core.grpcopts import channel_options
from comity.core.tls import witness_channel_credentials
from comity.core.witnesspolicy import WitnessIdentity
from comity.gateway.witness_client import WitnessClient
from comity.v1 import comity_pb2_grpc as pb_grpc

__all__ = ["IndependentWitnesses", "Prepared"]

_log = logging.getLogger("comity.gateway.witnessing")

_Key = tuple[object, ...]


def _key(w: WitnessIdentity) -> _Key:
    """What a channel to ``w`` depends on: a change in any of it needs a new channel."""
    return (w.id, w.endpoint, w.tls_cert, w.tls_cert_pins)


@dataclass(frozen=True)
class _Wanted:
    key: _Key
    identity: WitnessIdentity
    credentials: grpc.ChannelCredentials | None  # None: the channel in use is kept


@dataclass(frozen=True)
class Prepared:
    """The independent witnesses of one federation version, ready for :meth:`IndependentWitnesses.use`."""

    wanted: tuple[_Wanted, ...]


@dataclass
class _Open:
    channel: grpc.aio.Channel
    client: WitnessClient


class IndependentWitnesses:
    """The open channels to the independent witnesses of the federation version in use."""

    def __init__(
        self, *, client_cert: Path | None, client_key: Path | None, passphrase: bytes | None, deadline: float
    ) -> None:
        self._client_cert = client_cert
        self._client_key = client_key
        self._passphrase = passphrase
        self._deadline = deadline
        self._open: dict[_Key, _Open] = {}
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def clients(self) -> list[WitnessClient]:
        """A client of every independent witness asked now."""
        return [o.client for o in self._open.values()]

    def prepare(self, federation: Federation) -> Prepared:
        """Credentials for each independent witness of ``federation`` that needs a new channel.

        Raises (``ConfigError`` and the like) when a witness's ``tls_cert`` does not match its
        pins; reads files, so call it off the event loop while serving.
        """
        wanted: list[_Wanted] = []
        for w in federation.witness_identities():
            if w.country is not None:
                continue  # a node's: asked on the node's channel
            if w.tls_cert is None or self._client_cert is None or self._client_key is None:
                _log.warning("independent witness %s has no tls_cert in the federation file: not asked", w.id)
                continue
            key = _key(w)
            credentials = None
            if key not in self._open:
                credentials = witness_channel_credentials(
                    w, self._client_cert, self._client_key, passphrase=self._passphrase
                )
            wanted.append(_Wanted(key, w, credentials))
        return Prepared(tuple(wanted))

    def use(self, prepared: Prepared) -> list[WitnessClient]:
        """Open the channels ``prepared`` adds, close those it drops; the clients to ask from now on.

        On the event loop; it does not fail.
        """
        opened: dict[_Key, _Open] = {}
        for want in prepared.wanted:
            kept = self._open.pop(want.key, None)
            if kept is None and want.credentials is not None:
                kept = self._connect(want.identity, want.credentials)
            if kept is not None:
                opened[want.key] = kept
        for gone in self._open.values():
            _log.info("independent witness %s: no longer asked", gone.client.witness_id)
            task = asyncio.get_running_loop().create_task(gone.channel.close(grace=self._deadline))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self._open = opened
        return self.clients

    def _connect(self, w: WitnessIdentity, credentials: grpc.ChannelCredentials) -> _Open:
        options = [*channel_options(), ("grpc.ssl_target_name_override", w.host)]
        channel = grpc.aio.secure_channel(w.endpoint, credentials, options=options)
        _log.info("independent witness %s at %s: asked from the next round", w.id, w.endpoint)
        return _Open(channel, WitnessClient(w.id, pb_grpc.WitnessStub(channel), self._deadline))

    async def close(self) -> None:
        """Close every channel (at stop), and wait for those being closed."""
        for o in self._open.values():
            await o.channel.close()
        self._open = {}
        for task in list(self._closing):
            await task
