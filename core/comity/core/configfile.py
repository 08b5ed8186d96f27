"""Reading TOML configuration into typed values, with errors that name the bad field.

Each component's config module describes its fields through a :class:`Section`; the
section reports a missing, mistyped or unknown key as ``file: table.key: what is wrong``,
so an operator can fix the file without reading code. Values are read once at start-up;
code below works with frozen dataclasses, never raw dictionaries.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from comity.core.errors import ConfigError

__all__ = ["Section", "database_url", "load_toml"]

T = TypeVar("T")
_MISSING: Any = object()


def load_toml(path: Path) -> Section:
    """Parse ``path`` and return its top-level table as a :class:`Section`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(path)) from None
    return Section(data, source=str(path), base=path.parent, prefix="")


class Section:
    """One TOML table; typed getters that name the field on every error.

    Call :meth:`done` after reading a table so that a misspelt key is reported instead of
    silently ignored.
    """

    def __init__(self, data: dict[str, Any], *, source: str, base: Path, prefix: str) -> None:
        self._data = data
        self._seen: set[str] = set()
        self.source = source
        self.base = base
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, message: str) -> ConfigError:
        """A ConfigError about ``key`` of this table."""
        return ConfigError(message, field=self._name(key), source=self.source)

    def has(self, key: str) -> bool:
        """Whether the table sets ``key``."""
        return key in self._data

    def _get(self, key: str, kind: type[T], default: T, what: str) -> T:
        self._seen.add(key)
        if key not in self._data:
            if default is _MISSING:
                raise self.error(key, f"required {what} is missing")
            return default
        value = self._data[key]
        # bool is an int in Python; a config `port = true` is still a mistake.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(key, f"must be {what}, not {type(value).__name__} {value!r}")
        return value

    def text(self, key: str, default: str = _MISSING, *, choices: tuple[str, ...] = ()) -> str:
        """A string value, optionally one of ``choices``."""
        value = self._get(key, str, default, "a string")
        if choices and value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}; got {value!r}")
        if not value and default is _MISSING:
            raise self.error(key, "must not be empty")
        return value

    def integer(self, key: str, default: int = _MISSING, *, minimum: int | None = None) -> int:
        """An integer value, at least ``minimum``."""
        value = self._get(key, int, default, "an integer")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}; got {value}")
        return value

    def number(self, key: str, default: float = _MISSING, *, minimum: float | None = None) -> float:
        """A number (integers accepted)."""
        self._seen.add(key)
        if key not in self._data and default is not _MISSING:
            return default
        value = self._data.get(key, _MISSING)
        if value is _MISSING:
            raise self.error(key, "required number is missing")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"must be a number, not {type(value).__name__} {value!r}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum}; got {value}")
        return float(value)

    def texts(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        """A list of strings."""
        value = self._get(key, list, list(default), "a list of strings")
        if not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"must be a list of non-empty strings; got {value!r}")
        return tuple(value)

    def flag(self, key: str, default: bool = _MISSING) -> bool:
        """A boolean value."""
        return self._get(key, bool, default, "true or false")

    def path(self, key: str, default: Path | None = _MISSING) -> Path:
        """A file path; relative paths are taken from the config file's folder."""
        if key not in self._data and default is not _MISSING:
            self._seen.add(key)
            if default is None:
                raise self.error(key, "required path is missing")
            return default
        raw = self.text(key)
        path = Path(os.path.expanduser(raw))
        return path if path.is_absolute() else (self.base / path)

    def optional_path(self, key: str) -> Path | None:
        """A file path, or None when the key is absent."""
        if self.has(key):
            return self.path(key)
        self._seen.add(key)
        return None

    def secret(self, key: str, *, env: str) -> str | None:
        """A secret: the environment variable ``env`` wins over the file, so secrets can stay out of it."""
        self._seen.add(key)
        if env in os.environ:
            return os.environ[env]
        return self.text(key) if key in self._data else None

    def table(self, key: str, *, required: bool = True) -> Section:
        """A sub-table (an empty one when absent and not required)."""
        self._seen.add(key)
        value = self._data.get(key, _MISSING)
        if value is _MISSING:
            if required:
                raise self.error(key, "required table is missing")
            value = {}
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, not {type(value).__name__}")
        return Section(value, source=self.source, base=self.base, prefix=self._name(key))

    def table_list(self, key: str) -> list[tuple[str, dict[str, Any]]]:
        """An array of tables (``[[key]]``) as (field name, raw table) pairs; empty when absent.

        The caller validates each table and names errors with the given field name.
        """
        self._seen.add(key)
        value = self._data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(key, "must be an array of tables ([[...]])")
        return [(f"{self._name(key)}[{i}]", v) for i, v in enumerate(value)]

    def done(self) -> None:
        """Raise for any key this table has that nothing read (most often a typo)."""
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            raise self.error(unknown[0], "unknown setting (misspelt?)")


def database_url(section: Section, key: str = "url", *, env: str | None = None) -> str:
    """A sqlite:/// or postgresql:// URL; a relative SQLite path is taken from the config's folder."""
    # Read the file's value even when the environment wins, so it is never reported as unknown.
    from_file = section.text(key, "")
    url = (os.environ.get(env) if env else None) or from_file
    if not url:
        raise section.error(key, "required database URL is missing")
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return url if path.is_absolute() else "sqlite:///" + str(section.base / path)
    if url.startswith(("postgresql://", "postgresql+psycopg://")):
        return url
    raise section.error(key, "must start with sqlite:/// or postgresql://")
