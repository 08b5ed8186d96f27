"""A strict reader for the TOML files of a bundle: every error names file and field."""

from __future__ import annotations

import datetime as dt
import tomllib
from typing import Any, TypeVar

from comity.policy.errors import BundleError

__all__ = ["Table", "parse_table"]

T = TypeVar("T")


def parse_table(text: str, *, source: str) -> Table:
    """Parse TOML ``text`` read from the bundle file ``source`` (named in every error)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BundleError(f"not valid TOML: {exc}", source=source) from None
    return Table(data, source=source, prefix="")


class Table:
    """One TOML table. Call :meth:`done` after reading so a misspelt key is reported."""

    def __init__(self, data: dict[str, Any], *, source: str, prefix: str) -> None:
        self.data = data
        self.source = source
        self.prefix = prefix
        self._seen: set[str] = set()

    def error(self, key: str, message: str) -> BundleError:
        """A BundleError about ``key`` of this table."""
        return BundleError(message, field=f"{self.prefix}.{key}" if self.prefix else key, source=self.source)

    def _get(self, key: str, kind: type[T], what: str, default: Any) -> T:
        self._seen.add(key)
        if key not in self.data:
            if default is None:
                raise self.error(key, f"is missing (expected {what})")
            return default  # type: ignore[no-any-return]
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(key, f"must be {what}, not {type(value).__name__}")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        """A string; a required one must not be empty."""
        value = self._get(key, str, "a string", default)
        if not value and default is None:
            raise self.error(key, "must not be empty")
        return value

    def integer(self, key: str, *, minimum: int = 0) -> int:
        """An integer of at least ``minimum``."""
        value = self._get(key, int, "an integer", None)
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}")
        return value

    def flag(self, key: str, default: bool | None = None) -> bool:
        """A boolean."""
        return self._get(key, bool, "true or false", default)

    def date(self, key: str) -> dt.date:
        """A TOML local date (``2026-01-01``)."""
        value = self._get(key, dt.date, "a date (YYYY-MM-DD)", None)
        if isinstance(value, dt.datetime):
            raise self.error(key, "must be a date without a time")
        return value

    def texts(self, key: str, *, required: bool = True) -> tuple[str, ...]:
        """A list of non-empty strings."""
        items = self._get(key, list, "a list", None if required else [])
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                raise self.error(f"{key}[{i}]", "must be a non-empty string")
        return tuple(items)

    def table(self, key: str) -> Table:
        """A required sub-table."""
        value = self._get(key, dict, "a table", None)
        return Table(value, source=self.source, prefix=self._name(key))

    def tables(self, key: str, *, required: bool = True) -> list[Table]:
        """An array of tables; errors name ``key[i]``."""
        items = self._get(key, list, "an array of tables", None if required else [])
        out: list[Table] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise self.error(f"{key}[{i}]", "must be a table")
            out.append(Table(item, source=self.source, prefix=self._name(f"{key}[{i}]")))
        return out

    def done(self) -> None:
        """Raise for any key nothing read (most often a typo)."""
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            raise self.error(unknown[0], "unknown key (misspelt?)")

    def _name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key
