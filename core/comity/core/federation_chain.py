"""Which federation file version a component trusts next, and a verifier's version kept between runs.

A running server takes a changed file only as the next version of the one it holds
(:func:`next_version`). A legal officer checks the log against the keys a federation file
names, so whoever can swap that file could make a forged log verify: a verifier that keeps
state (the console's mirror, ``comity audit verify --state``) therefore keeps the bytes of the
version it trusts and, on each run, takes the file it is given only as (:func:`follow`):

- the version whose SHA-256 equals the pin, when one is given (an out-of-band decision, which
  also re-pins a verifier that holds another version);
- with nothing held and no pin: the file as it is, on first use, which the caller says out
  loud, since nothing was checked;
- the same bytes as the held version;
- the held version's next version, signed by the threshold of its ``[signing]`` keys, exactly
  one version later, not expired (:func:`~comity.core.federation_sign.verify_update`); a held
  version without ``[signing]`` is followed by nothing but a pin.

Anything else is refused with the :class:`~comity.core.federation_sign.FederationTrustError`
naming the broken rule, and the held version stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path

from comity.core.errors import ConfigError
from comity.core.federation import Federation
from comity.core.federation_sign import (
    BadVersion,
    Expired,
    UnsignedPredecessor,
    file_sha256,
    verify_pinned,
    verify_update,
)

__all__ = ["Change", "Followed", "follow", "next_version"]


class Change(Enum):
    """How the file given relates to the version held."""

    FIRST_USE = "first use, not checked"
    PINNED = "matches the pin"
    HELD = "the version held"
    NEXT = "the next version, signed by the held version's keys"


@dataclass(frozen=True)
class Followed:
    """The version now trusted, its exact bytes (to keep), and how it was reached."""

    federation: Federation
    data: bytes
    change: Change

    @property
    def sha256(self) -> str:
        """The trusted bytes' SHA-256: what a pin of this version is."""
        return file_sha256(self.data)


def next_version(trusted: Federation, path: Path, *, now: datetime, data: bytes | None = None) -> Federation:
    """``path`` as the version after ``trusted``, by the rules a running server follows.

    With ``[signing]`` in the trusted version, the file must be signed by its threshold
    (:func:`~comity.core.federation_sign.verify_update`); without it, it must carry a higher
    version. Either way it must not have expired. ``data`` is the file's bytes when already read.
    """
    if trusted.signing is not None:
        return verify_update(trusted, path, now=now, data=data)
    federation = (
        Federation.load(path)
        if data is None
        else Federation.from_toml_text(_text(data, path), base=path.resolve().parent, source=str(path))
    )
    if federation.version is None or trusted.version is None or federation.version <= trusted.version:
        raise BadVersion(
            f"{path} is version {federation.version}, not newer than the trusted version "
            f"{trusted.version}; only a format-2 file with a higher version follows it",
            hint="raise the file's version (and sign it when the trusted version has [signing])",
        )
    if federation.expires is not None and now >= federation.expires:
        raise Expired(f"{path} (version {federation.version}) expired at {federation.expires}")
    return federation


def follow(path: Path, held: bytes | None, *, pin: str = "", now: datetime) -> Followed:
    """The version to verify with: ``path``, taken only as the module docstring says.

    ``held`` is the bytes of the version trusted before (None on first use); ``pin`` is the
    SHA-256 of the file given, agreed out of band.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read federation file: {exc.strerror}", source=str(path)) from None
    if pin:
        return Followed(verify_pinned(path, pin, now=now, data=data), data, Change.PINNED)
    base = path.resolve().parent
    if held is None:
        parsed = Federation.from_toml_text(_text(data, path), base=base, source=str(path))
        return Followed(parsed, data, Change.FIRST_USE)
    trusted = Federation.from_toml_text(_text(held, path), base=base, source=f"{path} (the version held)")
    if data == held:
        return Followed(trusted, held, Change.HELD)
    if trusted.signing is None:  # said before the envelope is looked for: no envelope could help
        raise UnsignedPredecessor(
            f"{path} is not the version of {trusted.name!r} held (version {trusted.version}), and that "
            "version names no [signing] keys, so no later version can be trusted by its signatures",
            hint=f"compare the new file's SHA-256 {file_sha256(data)} with the one its operators published, "
            "then pin it",
        )
    return Followed(verify_update(trusted, path, now=now, data=data), data, Change.NEXT)


def _text(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", source=str(path)) from None
