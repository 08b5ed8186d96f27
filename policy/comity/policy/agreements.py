"""Which bundle decides a query: the one of the agreement covering its pair of countries.

The federation file lists agreements, each naming its bundles by digest (``bundle_digest`` for
the gateway, ``inbound`` for each responding party's node). A component loads every bundle its
agreements name once, at start-up, from a :class:`~comity.policy.bundle_store.BundleStore`; a
digest that cannot be found stops the start (fail closed). A query is then decided under the
agreement in force for (requesting country, responding country) at its time, and refused with
``NO_AGREEMENT`` when there is none.

A format-1 federation file lists no agreements: there, the component's configured bundle
decides every query, as before agreements existed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Generic, TypeVar

import grpc

from comity.core import refusals
from comity.core.agreements import Agreement
from comity.core.errors import ComityError, ConfigError
from comity.core.federation import Federation
from comity.policy.bundle import PolicyBundle
from comity.policy.bundle_store import BundleStore
from comity.policy.select import load_bundle

__all__ = ["Applicable", "ByAgreement", "load_policies", "no_agreement"]

refusals.register(
    refusals.Check(
        "NO_AGREEMENT",
        "NO_AGREEMENT",
        grpc.StatusCode.PERMISSION_DENIED,
        "no agreement between {requesting} and {responding} is in force on {day}, so no query between "
        "them can be served; the federation file must list one before such a query is made",
        "The federation file's agreements: a query is decided under the agreement binding its two countries",
    ),
)

T = TypeVar("T")


def no_agreement(requesting: str, responding: str, at: datetime) -> ComityError:
    """The refusal of a query between two countries that no agreement in force binds."""
    return refusals.refuse(
        "NO_AGREEMENT", requesting=requesting, responding=responding, day=at.date().isoformat()
    )


@dataclass(frozen=True, slots=True)
class Applicable(Generic[T]):
    """The agreement that covers a query (None under a format-1 file) and what decides it."""

    agreement: Agreement | None
    policy: T

    @property
    def agreement_id(self) -> str:
        """The agreement's id, "" under a format-1 file (no agreements)."""
        return self.agreement.id if self.agreement is not None else ""


class ByAgreement(Generic[T]):
    """Every agreement's bundle, loaded once and built into a ``T`` (an engine, a node's policy).

    ``digest_of`` says which of an agreement's bundles this component enforces (the gateway's
    ``bundle_digest``, or the node country's inbound digest; None: the agreement does not concern
    this component). Agreements naming one digest share one ``T``.
    """

    def __init__(
        self,
        federation: Federation,
        *,
        store: BundleStore,
        digest_of: Callable[[Agreement], str | None],
        build: Callable[[PolicyBundle], T],
        fallback: PolicyBundle | None,
        what: str,
        previous: ByAgreement[T] | None = None,
    ) -> None:
        self._federation = federation
        self._digest_of = digest_of
        # What a previous version built is used again for the same digest (a reload of the
        # federation file then loads and self-tests only the bundles that are new).
        reused: Mapping[str, T] = previous.built if previous is not None else {}
        built: dict[str, T] = {}
        self._by_id: dict[str, T] = {}
        for i, agreement in enumerate(federation.agreements):
            digest = digest_of(agreement)
            if digest is None:
                continue
            if digest not in built:
                built[digest] = (
                    reused[digest] if digest in reused else build(_find(store, digest, agreement, i, what))
                )
            self._by_id[agreement.id] = built[digest]
        self._fallback: T | None = None
        if not federation.agreements:
            if fallback is None:
                raise ConfigError(
                    "the federation file lists no agreements, so this component needs its own bundle",
                    field="policy.bundle",
                    hint="name the bundle in [policy] bundle, or list [[agreements]] in the federation file",
                )
            if previous is not None and previous.fallback is not None and previous.bundle is fallback:
                self._fallback = previous.fallback
            else:
                self._fallback = build(fallback)
        self._bundle = fallback
        self._built = built

    @property
    def built(self) -> Mapping[str, T]:
        """What was built for each bundle digest the agreements name."""
        return dict(self._built)

    @property
    def bundle(self) -> PolicyBundle | None:
        """The component's own bundle (``[policy] bundle``), if it has one."""
        return self._bundle

    @property
    def fallback(self) -> T | None:
        """What decides every query under a federation file without agreements (else None)."""
        return self._fallback

    @property
    def policies(self) -> Mapping[str, T]:
        """What decides under each agreement this component enforces, by agreement id."""
        return dict(self._by_id)

    def select(self, requesting: str, responding: str, at: datetime) -> Applicable[T]:
        """What decides a query from ``requesting`` to ``responding`` at ``at``.

        Raises:
            PermissionDenied: ``NO_AGREEMENT``, when no agreement in force binds the two
                countries (or the one that does names no bundle for this component).
        """
        if self._fallback is not None:
            return Applicable(None, self._fallback)
        agreement = self._federation.agreement_for(requesting, responding, at)
        if agreement is None or agreement.id not in self._by_id:
            raise no_agreement(requesting, responding, at)
        return Applicable(agreement, self._by_id[agreement.id])


def load_policies(
    federation: Federation,
    *,
    store: Path | None,
    configured: str,
    digest_of: Callable[[Agreement], str | None],
    build: Callable[[PolicyBundle], T],
    what: str,
    previous: ByAgreement[T] | None = None,
) -> ByAgreement[T]:
    """Every bundle a component enforces, from its ``[policy]`` settings (fail closed).

    ``store`` is the bundle store's folder (every bundle loaded is kept there by digest, so
    ``comity policy replay`` finds the rules of every logged decision); ``configured`` a bundle
    name or folder ("" for none) that is one more place to find a bundle by digest, and that
    decides every query under a federation file without agreements. ``previous``: the set a
    running component holds, whose built policies are used again for the digests it shares.
    """
    bundles = BundleStore(store)
    # The component's own bundle is read at start only: a reload keeps the one already loaded.
    fallback = load_bundle(configured) if configured and previous is None else None
    if previous is not None:
        fallback = previous.bundle
    if fallback is not None:
        bundles.add(fallback)

    def kept(bundle: PolicyBundle) -> T:
        if store is not None:
            bundles.keep(bundle)
        return build(bundle)

    return ByAgreement(
        federation,
        store=bundles,
        digest_of=digest_of,
        build=kept,
        fallback=fallback,
        what=what,
        previous=previous,
    )


def _find(store: BundleStore, digest: str, agreement: Agreement, index: int, what: str) -> PolicyBundle:
    """The bundle of ``digest``; a missing one stops the start naming the agreement."""
    try:
        return store.find(digest)
    except ConfigError as err:
        raise ConfigError(
            f"the {what} bundle of agreement {agreement.id!r} ({digest}) cannot be loaded: {err.message}",
            field=f"agreements[{index}]",
            hint="copy the bundle into the [policy] store folder (comity policy keep BUNDLE --store DIR)",
        ) from None
