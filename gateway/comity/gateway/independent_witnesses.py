"""The gateway's channels to the independent witnesses (``[[witnesses]]``), following the federation file.

Each independent witness that has a ``tls_cert`` gets a channel of its own, showing the gateway's
client certificate in use (:class:`~comity.core.tls_reload.GatewayClientTls`) and trusting exactly
its pinned certificate (one without ``tls_cert`` is not asked, with a warning). For a newly
trusted version, :meth:`IndependentWitnesses.prepare` reads the certificates of the witnesses it
adds (or whose endpoint, certificate or pins change) off the event loop, raising to refuse the
version when one does not match its pins, as at start; :meth:`IndependentWitnesses.use` then opens
their channels and closes those of the witnesses the version no longer lists. A witness the
version keeps as it was keeps its channel and what the gateway knows of its size.

When the gateway's client certificate changes on disk, :meth:`IndependentWitnesses.renew` gives
each witness whose channel shows another one a new channel, under the same client (so the next
round, and what the gateway knows of the witness's size, go on). A channel no longer used closes
after a grace of one call deadline, so the calls in flight on it finish there.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc

from comity.core.errors import ComityError
from comity.core.federation import Federation
from comity.core.grpcopts import channel_options
from comity.core.tls_reload import GatewayClientTls
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
    # None: the channel in use is kept; else the credentials and the client certificate they show.
    credentials: tuple[grpc.ChannelCredentials, str] | None


@dataclass(frozen=True)
class Prepared:
    """The independent witnesses of one federation version, ready for :meth:`IndependentWitnesses.use`."""

    wanted: tuple[_Wanted, ...]


@dataclass
class _Open:
    witness: WitnessIdentity
    channel: grpc.aio.Channel
    client: WitnessClient
    shows: str  # SHA-256 of the client certificate the channel shows


class IndependentWitnesses:
    """The open channels to the independent witnesses of the federation version in use."""

    def __init__(self, *, client: GatewayClientTls | None, deadline: float) -> None:
        self._client = client
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
            if w.tls_cert is None or self._client is None:
                _log.warning("independent witness %s has no tls_cert in the federation file: not asked", w.id)
                continue
            key = _key(w)
            credentials = None if key in self._open else self._client.for_witness(w)
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
            self._retire(gone.channel)
        self._open = opened
        return self.clients

    async def renew(self) -> None:
        """Give every witness whose channel shows another client certificate than the one in use a
        new channel showing it (read off the event loop); its client and known size stay.

        A witness whose ``tls_cert`` no longer matches its pins keeps its channel (an error said).
        """
        client = self._client
        if client is None:
            return
        stale = [o for o in self._open.values() if o.shows != client.identity]
        if not stale:
            return
        fresh = await asyncio.to_thread(self._credentials, client, stale)
        held = {id(o) for o in self._open.values()}
        for o, (credentials, shows) in fresh:
            if id(o) in held:  # else a version replaced or removed it meanwhile, with its own channel
                self._retire(o.channel)
                o.channel, o.shows = self._channel(o.witness, credentials), shows
                o.client.stub = pb_grpc.WitnessStub(o.channel)
                _log.warning(
                    "independent witness %s: new channel showing client certificate %s…",
                    o.witness.id,
                    shows[:16],
                )

    @staticmethod
    def _credentials(
        client: GatewayClientTls, stale: list[_Open]
    ) -> list[tuple[_Open, tuple[grpc.ChannelCredentials, str]]]:
        fresh = []
        for o in stale:
            try:
                fresh.append((o, client.for_witness(o.witness)))
            except (ComityError, OSError) as exc:
                why = exc.message if isinstance(exc, ComityError) else str(exc)
                _log.error(
                    "independent witness %s keeps a channel showing the previous client certificate: %s",
                    o.witness.id,
                    why,
                )
        return fresh

    def _retire(self, channel: grpc.aio.Channel) -> None:
        # The calls already sent on it have at most one deadline left; new ones go to its successor.
        task = asyncio.get_running_loop().create_task(channel.close(grace=self._deadline))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _channel(self, w: WitnessIdentity, credentials: grpc.ChannelCredentials) -> grpc.aio.Channel:
        options = [*channel_options(), ("grpc.ssl_target_name_override", w.host)]
        return grpc.aio.secure_channel(w.endpoint, credentials, options=options)

    def _connect(self, w: WitnessIdentity, credentials: tuple[grpc.ChannelCredentials, str]) -> _Open:
        channel = self._channel(w, credentials[0])
        _log.info("independent witness %s at %s: asked from the next round", w.id, w.endpoint)
        client = WitnessClient(w.id, pb_grpc.WitnessStub(channel), self._deadline)
        return _Open(w, channel, client, credentials[1])

    async def close(self) -> None:
        """Close every channel (at stop), and wait for those being closed."""
        # Emptied first: a renewal finishing meanwhile then finds none of them to replace.
        opened, self._open = self._open, {}
        for o in opened.values():
            await o.channel.close()
        for task in list(self._closing):
            await task
