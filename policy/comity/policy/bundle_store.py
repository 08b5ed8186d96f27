"""Bundles kept by digest, so that a logged decision finds the exact rules it was decided under.

Every decision entry names the digest of the bundle that decided it (``sha256:<hex>`` over the
bundle's files, :func:`~comity.policy.bundle.bundle_digest`). A :class:`BundleStore` maps a
digest back to a bundle. It looks in two places:

* a **content-addressed folder**: ``<root>/sha256-<hex>/`` holds a copy of the bundle files.
  The gateway and the nodes copy every bundle they load there at start-up (:meth:`keep`), so a
  bundle that was once enforced can be found after it is edited or replaced;
* the **bundles shipped with Comity** (``policy/bundles/``), found by their current digest.

A folder whose files do not hash to its name is refused, so a copy cannot be swapped.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from comity.policy.bundle import PolicyBundle, bundle_roots, folder_digest
from comity.policy.errors import BundleError

__all__ = ["BundleStore", "folder_name"]


def folder_name(digest: str) -> str:
    """The folder a bundle of ``digest`` is kept in (``sha256-<hex>``)."""
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
        raise BundleError(f"not a bundle digest: {digest!r}", hint="digests look like sha256:<64 hex>")
    return f"sha256-{hexdigest}"


class BundleStore:
    """Finds bundles by digest in ``root`` (if given) and among the shipped bundles."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root
        self._loaded: dict[str, PolicyBundle] = {}

    def keep(self, bundle: PolicyBundle) -> Path:
        """Copy ``bundle``'s files into the store (once); returns its folder."""
        if self._root is None:
            raise BundleError("this bundle store has no folder to keep bundles in")
        target = self._root / folder_name(bundle.digest)
        if not target.is_dir():
            self._root.mkdir(parents=True, exist_ok=True)
            # A partial copy of its own: a gateway and its nodes may keep the same bundle at once.
            partial = self._root / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
            shutil.copytree(bundle.path, partial, ignore=shutil.ignore_patterns("__pycache__"))
            try:
                partial.rename(target)  # a reader sees the whole copy or none
            except OSError:
                shutil.rmtree(partial, ignore_errors=True)
                if not target.is_dir():
                    raise
        return target

    def add(self, bundle: PolicyBundle) -> None:
        """Make ``bundle`` (loaded from anywhere, e.g. a configured folder) findable by its digest,
        and keep a copy when the store has a folder."""
        self._loaded[bundle.digest] = bundle
        if self._root is not None:
            self.keep(bundle)

    def find(self, digest: str) -> PolicyBundle:
        """The bundle whose digest is ``digest``; raises :class:`BundleError` when none is kept."""
        if digest in self._loaded:
            return self._loaded[digest]
        for folder in self._candidates(digest):
            # Hashing the files is cheap; loading runs the bundle's tests: load only the match.
            if folder_digest(folder) == digest:
                bundle = PolicyBundle.load(folder)
                self._loaded[digest] = bundle
                return bundle
            if folder.name == folder_name(digest):
                raise BundleError("the kept bundle's files do not hash to its name", source=str(folder))
        raise BundleError(
            f"no bundle with digest {digest} is kept",
            hint="give the bundle store the gateway's [policy] store folder, or the bundle's folder",
        )

    def _candidates(self, digest: str) -> Iterator[Path]:
        if self._root is not None and (self._root / folder_name(digest)).is_dir():
            yield self._root / folder_name(digest)
        if self._root is not None and (self._root / "bundle.toml").is_file():
            yield self._root  # a bundle folder given directly
        seen: set[Path] = set()
        for root in bundle_roots(Path(__file__).resolve().parent):
            for folder in sorted(root.glob("*/bundle.toml")) if root.is_dir() else []:
                if folder.parent.resolve() not in seen:
                    seen.add(folder.parent.resolve())
                    yield folder.parent
