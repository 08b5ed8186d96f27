"""Typed reading of the federation file's tables: ids, keys, key histories, pins, instants.

:class:`FederationTable` extends :class:`~comity.core.configfile.Section` with what only the
federation file has. Every error names the field as the file spells it, e.g.
``members[0].nodes[0].witness_keys[1].valid_from``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from comity.core.configfile import Section
from comity.core.errors import ConfigError
from comity.core.keyhistory import DatedKey, KeyHistory, KeyHistoryError, LogKeyHistory, SizedKey
from comity.core.keys import KeyFileError, VerifyingKey, public_key_from_text

__all__ = ["AGENCY", "COUNTRY", "ID", "FederationTable"]

AGENCY = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9-]+)+$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
# No spaces and no '+': an id may also be a C2SP key name (a witness's cosignature lines).
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@:-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class FederationTable(Section):
    """A Section that also reads arrays of tables, keys, key histories, ids, pins and instants."""

    def at(self, key: str) -> str:
        """The dotted name of ``key`` in this table (for error messages)."""
        return f"{self.prefix}.{key}" if self.prefix else key

    def tables(self, key: str, *, required: bool = True) -> list[FederationTable]:
        """The array of tables ``[[key]]``; at least one entry unless not ``required``."""
        self._seen.add(key)
        value = self._data.get(key)
        if value is None:
            if required:
                raise self.error(key, "required array of tables is missing")
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(key, f"must be an array of tables ([[{self.at(key)}]])")
        if required and not value:
            raise self.error(key, "must list at least one entry")
        return [
            FederationTable(v, source=self.source, base=self.base, prefix=f"{self.at(key)}[{i}]")
            for i, v in enumerate(value)
        ]

    def raw(self, key: str) -> Any:
        """The value of ``key`` as TOML gave it (for values with more than one accepted form)."""
        self._seen.add(key)
        return self._data[key]

    def sub(self, key: str, *, required: bool = True) -> FederationTable:
        """The sub-table ``[key]`` (an empty one when absent and not ``required``)."""
        t = self.table(key, required=required)
        return FederationTable(t._data, source=t.source, base=t.base, prefix=t.prefix)

    def pattern(self, key: str, regex: re.Pattern[str], what: str, default: str | None = None) -> str:
        """A string matching ``regex`` (``what`` describes it in the error)."""
        value = self.text(key) if default is None or self.has(key) else default
        if not regex.match(value):
            raise self.error(key, f"{value!r} is not {what}")
        return value

    def identifier(self, key: str = "id") -> str:
        """An id: letters, digits and ``. _ / @ : -``."""
        return self.pattern(key, ID, "an id (letters, digits, . _ / @ : -)")

    def strings(self, key: str) -> tuple[str, ...]:
        """A non-empty array of non-empty strings."""
        value = self.raw(key) if self.has(key) else None
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, "must be a non-empty array of strings")
        return tuple(value)

    def keys(self) -> tuple[str, ...]:
        """Every key the table sets (for tables keyed by name, like ``[agreements.inbound]``)."""
        return tuple(self._data)

    def optional_instant(self, key: str) -> datetime | None:
        """A TOML offset date-time, or None when absent."""
        return self.instant(key) if self.has(key) else None

    def instant(self, key: str) -> datetime:
        """A TOML offset date-time (``2026-01-01T00:00:00Z``)."""
        self._seen.add(key)
        if key not in self._data:
            raise self.error(key, "required date-time is missing")
        value = self._data[key]
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise self.error(
                key, f"must be a date-time with an offset like 2026-01-01T00:00:00Z, not {value!r}"
            )
        return value

    def verifying_key(self, key: str, key_id: str) -> VerifyingKey:
        """A public key in text form (``ed25519:<base64>``), named ``key_id``."""
        try:
            return VerifyingKey(key_id, public_key_from_text(self.text(key)))
        except KeyFileError as exc:
            raise self.error(key, exc.message) from None

    def key_history(self, single: str, history: str, key_id: str, *, format: int) -> KeyHistory:
        """Format 1: the one key ``single``. Format 2: the dated keys ``[[history]]``."""
        if not self._one_form(single, history, format):
            return KeyHistory.single(self.verifying_key(single, key_id))
        entries = self.tables(history)
        keys = []
        for e in entries:
            keys.append(
                DatedKey(
                    e.verifying_key("key", key_id),
                    e.optional_instant("valid_from"),
                    e.optional_instant("valid_until"),
                )
            )
            e.done()
        try:
            return KeyHistory(tuple(keys))
        except KeyHistoryError as exc:
            raise self._history_error(history, exc) from None

    def log_key_history(self, single: str, history: str, key_id: str, *, format: int) -> LogKeyHistory:
        """Format 1: the one key ``single``. Format 2: the sized keys ``[[history]]``."""
        if not self._one_form(single, history, format):
            return LogKeyHistory.single(self.verifying_key(single, key_id))
        keys = []
        for e in self.tables(history):
            until = e.integer("until_size", minimum=1) if e.has("until_size") else None
            keys.append(SizedKey(e.verifying_key("key", key_id), e.integer("from_size", 0, minimum=0), until))
            e.done()
        try:
            return LogKeyHistory(tuple(keys))
        except KeyHistoryError as exc:
            raise self._history_error(history, exc) from None

    def _one_form(self, single: str, history: str, format: int) -> bool:
        """Whether the file gives the history form; refuses the form its format does not have."""
        if format == 1:
            if self.has(history):
                raise self.error(
                    history, f"a key history needs format = 2 (this file is format 1: {single} = ...)"
                )
            return False
        if self.has(single):
            raise self.error(single, f"format 2 lists keys as a history: use [[{self.at(history)}]]")
        return True

    def _history_error(self, history: str, exc: KeyHistoryError) -> ConfigError:
        where = self.at(history) if exc.index is None else f"{self.at(history)}[{exc.index}]"
        field = f"{where}.{exc.field}" if exc.field else where
        return ConfigError(exc.message, field=field, source=self.source)

    def sha256_pins(self, key: str) -> tuple[str, ...]:
        """One fingerprint, or an array of them (current first) while a certificate is replaced."""
        raw = self.raw(key) if self.has(key) else self.text(key)
        values = raw if isinstance(raw, list) and raw else [raw]
        pins = []
        for value in values:
            text = (
                value.strip().lower().removeprefix("sha256:").replace(":", "")
                if isinstance(value, str)
                else ""
            )
            if not _SHA256.match(text):
                raise self.error(key, "must be a SHA-256 fingerprint (64 hex digits) or an array of them")
            pins.append(text)
        return tuple(pins)

    def endpoint(self, key: str) -> str:
        """``host:port`` with a port from 1 to 65535."""
        value = self.text(key)
        if not _is_endpoint(value):
            raise self.error(key, f"{value!r} must be host:port with a port from 1 to 65535")
        return value

    def endpoints(self, key: str) -> tuple[str, ...]:
        """An optional array of distinct ``host:port`` endpoints (empty when absent)."""
        if not self.has(key):
            self._seen.add(key)
            return ()
        values = self.strings(key)
        for value in values:
            if not _is_endpoint(value):
                raise self.error(key, f"{value!r} must be host:port with a port from 1 to 65535")
        if len(set(values)) != len(values):
            raise self.error(key, "lists an endpoint twice")
        return values


def _is_endpoint(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)
