"""``comity federation add-member``: a new member's files and the next version of the federation file.

For the new country it writes what ``comity init`` writes for each of its countries (a
certificate authority and the node's TLS certificate, the node's response and witness keys,
one agency with its identity provider's key and key set (JWKS), an investigator, a legal
officer, a judicial authority) plus the agency's federation key and the node's config. Then it
writes the **next version** of the federation file beside the current one: the current file's
bytes with the version raised by one and a new expiry, followed by the new member's entry, its
federation key in ``[signing]``, its witness group (when the file declares a witness policy)
and the agreements it joins. Nothing else of the current file changes, so the release is
reviewed as an addition.

The new version is not trusted by anyone yet: the threshold of the **current** version's
signing keys signs it (``comity federation sign``) before it replaces the current file.

Everything is for loopback use (demos, tests), like ``comity init``: the member's private keys
are written next to everyone else's.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from comity.core.agreements import Agreement
from comity.core.bootstrap import (
    VALIDITY,
    AgencyFiles,
    NodeFiles,
    agreement_toml,
    member_ids,
    toml_instant,
    write_member,
)
from comity.core.errors import ConfigError
from comity.core.federation import Federation
from comity.core.federation_file import parse_federation_text
from comity.core.federation_toml import COUNTRY

__all__ = ["NewMember", "add_member", "member_country"]


@dataclass(frozen=True)
class NewMember:
    """Every file :func:`add_member` wrote."""

    country: str
    node: NodeFiles
    agency: AgencyFiles
    node_config: Path
    federation_file: Path
    """The next version of the federation file (not yet signed)."""
    version: int
    agreements: tuple[Agreement, ...]
    threshold: int
    """How many of the current version's signing keys must sign the next version."""


def member_country(value: str) -> str:
    """``value`` as a country code (upper case), or a ConfigError saying what a code looks like."""
    code = value.strip().upper()
    if not COUNTRY.match(code):
        raise ConfigError(
            f"{value!r} is not a country code",
            field="--node",
            hint="give two letters, the ISO 3166-1 alpha-2 code (e.g. GB, FR)",
        )
    return code


def add_member(
    federation_file: Path,
    *,
    country: str,
    port: int,
    agreements: Sequence[Agreement] = (),
    host: str = "127.0.0.1",
    out: Path | None = None,
    threshold: int | None = None,
    passphrase: bytes | None = None,
    now: datetime | None = None,
) -> NewMember:
    """Write ``country``'s files beside ``federation_file`` and the next version of that file.

    ``agreements`` are those the new member joins: each names it among its parties. ``out`` is
    where the next version goes (default ``federation.vN.toml`` beside the current file; it
    must be in the same folder, since the file's paths are relative to it). ``threshold`` sets
    the next version's ``[signing]`` threshold (default: the current one).

    Raises:
        ConfigError: for a country already a member, agreements the member is not party to
            or that the file already lists, a current file without versions or a signing
            role, or files that are already there (nothing is overwritten).
    """
    now = now or datetime.now(UTC)
    current = Federation.load(federation_file)
    country = member_country(country)
    _check_current(current, federation_file, country)
    _check_agreements(current, country, agreements)
    version = (current.version or 0) + 1
    out = out or federation_file.with_name(f"federation.v{version}.toml")
    if out.resolve().parent != federation_file.resolve().parent:
        raise ConfigError(
            f"{out} is not beside {federation_file}",
            field="--out",
            hint="write the next version into the current file's folder: its paths are relative to it",
        )
    directory = federation_file.resolve().parent
    index = len(current.members)
    agency_id, node_id = member_ids(country, index)
    config = directory / "configs" / f"{node_id}.toml"
    made = [
        directory / "pki" / country.lower(),
        directory / "keys" / node_id,
        directory / "keys" / agency_id,
        directory / "jwks" / f"{agency_id}.json",
        config,
    ]
    _check_free([out, *made], current, agency_id, node_id)
    try:
        entry = write_member(
            directory, country, index=index, host=host, port=port, passphrase=passphrase, now=now
        )
        node, agency = entry.node, entry.agency
        before = federation_file.read_text(encoding="utf-8")
        text = _next_version(
            before,
            version=version,
            expires=now + VALIDITY,
            threshold=threshold,
            member=entry.lines,
            witness_group="witness_policy" in tomllib.loads(before),
            country=country,
            agreements=agreements,
        )
        parse_federation_text(text, base=directory, source=str(out), path=out)
        _write_node_config(config, node, directory, federation_file)
    except BaseException:
        for path in made:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        raise
    out.write_text(text, encoding="utf-8")
    assert current.signing is not None  # checked by _check_current
    return NewMember(
        country=country,
        node=node,
        agency=agency,
        node_config=config,
        federation_file=out,
        version=version,
        agreements=tuple(agreements),
        threshold=current.signing.threshold,
    )


def _check_current(current: Federation, file: Path, country: str) -> None:
    if current.format < 2 or current.version is None:
        raise ConfigError(
            f"{file} is a format-1 file: it has no versions, so no next version can be made",
            hint="write a format-2 federation (comity init) and move the members to it",
        )
    if current.signing is None:
        raise ConfigError(
            f"{file} (version {current.version}) names no [signing] keys, so a next version could not "
            "be trusted by anyone's signatures",
            hint="release a version with a [signing] role of the members' federation keys first, "
            "or pin the next version's SHA-256 in every component",
        )
    for member in current.members:
        if member.country == country:
            raise ConfigError(
                f"{country} is already a member of federation {current.name!r} ({member.agency})",
                field="--node",
                hint="each country joins once; to change its entry, edit and sign a new version",
            )


def _check_agreements(current: Federation, country: str, agreements: Sequence[Agreement]) -> None:
    members = {m.country for m in current.members} | {country}
    listed = {a.id for a in current.agreements}
    for agreement in agreements:
        if country not in agreement.parties:
            raise ConfigError(
                f"agreement {agreement.id!r} binds {', '.join(agreement.parties)}, not {country}",
                field="--agreement",
                hint="give only agreements the new member is party to",
            )
        strangers = [p for p in agreement.parties if p not in members]
        if strangers:
            raise ConfigError(
                f"agreement {agreement.id!r} names {', '.join(strangers)}, not a member",
                field="--agreement",
                hint="add that country first",
            )
        if agreement.id in listed:
            raise ConfigError(
                f"agreement {agreement.id!r} is already in the federation file", field="--agreement"
            )
        listed.add(agreement.id)


def _check_free(paths: Sequence[Path], current: Federation, agency: str, node_id: str) -> None:
    taken = {m.agency for m in current.members}
    if agency in taken or any(n.id == node_id for n in current.nodes()):
        raise ConfigError(f"agency {agency} or node {node_id} is already in the federation file")
    for path in paths:
        if path.exists():
            raise ConfigError(
                f"{path} already exists; nothing was written",
                hint="remove what an earlier attempt left, or choose another --out",
            )


# Top-level keys come before the first table header; only those two lines change.
_VERSION = re.compile(r"^version\s*=\s*\d+[ \t]*$", re.MULTILINE)
_EXPIRES = re.compile(r"^expires\s*=\s*\S+[ \t]*$", re.MULTILINE)
_HEADER = re.compile(r"^\s*\[", re.MULTILINE)
_THRESHOLD = re.compile(r"(^\[signing\][ \t]*\n(?:(?!\[)[^\n]*\n)*?)threshold\s*=\s*\d+", re.MULTILINE)


def _next_version(
    text: str,
    *,
    version: int,
    expires: datetime,
    threshold: int | None,
    member: list[str],
    witness_group: bool,
    country: str,
    agreements: Sequence[Agreement],
) -> str:
    first = _HEADER.search(text)
    head, tables = (text[: first.start()], text[first.start() :]) if first else (text, "")
    head, versions = _VERSION.subn(f"version = {version}", head, count=1)
    head, expiries = _EXPIRES.subn(f"expires = {toml_instant(expires)}", head, count=1)
    if not versions or not expiries:
        raise ConfigError(
            "cannot find the 'version = N' and 'expires = ...' lines before the file's first table",
            hint="write each on a line of its own at the top of the file",
        )
    if threshold is not None:
        tables, found = _THRESHOLD.subn(rf"\g<1>threshold = {threshold}", tables, count=1)
        if not found:
            raise ConfigError("cannot find the [signing] table's 'threshold = N' line", field="--threshold")
    lines = [
        "",
        f"# {country} joins in version {version} (comity federation add-member).",
        *member,
    ]
    if witness_group:
        lines += ["", "[[witness_policy.groups]]", f"country = {_s(country)}"]
    for agreement in agreements:
        lines += agreement_toml(agreement)
    new = head + tables
    return new + ("" if new.endswith("\n") else "\n") + "\n".join(lines) + "\n"


def _s(value: str) -> str:
    # JSON string syntax with ASCII escapes is valid TOML basic-string syntax.
    return json.dumps(value, ensure_ascii=True)


def _write_node_config(path: Path, node: NodeFiles, directory: Path, federation_file: Path) -> None:
    def rel(p: Path) -> str:
        return _s("../" + p.relative_to(directory).as_posix())

    text = f"""# Data node {node.node_id} ({node.country}), written by `comity federation add-member`.
[node]
id = {_s(node.node_id)}
listen = {_s(node.endpoint)}
federation = {_s("../" + federation_file.name)}

[store]
url = {_s(f"sqlite:///../data/{node.node_id}.db")}

[keys]
response_key = {rel(node.response_key)}
witness_key = {rel(node.witness_key)}

[tls]
cert = {rel(node.tls_cert)}
key = {rel(node.tls_key)}

[policy]
store = "../bundles"

[witness]
state = {_s(f"../data/{node.node_id}-witness.db")}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
