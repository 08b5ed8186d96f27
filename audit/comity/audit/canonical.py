"""RFC 8785 canonical JSON, fast for the values log events hold.

For objects with string keys, arrays, strings, booleans, null and integers within the
interoperable range (|n| <= 2^53 - 1), ``json.dumps(sort_keys=True, ensure_ascii=False)`` with
no whitespace writes exactly RFC 8785's bytes: both escape only ``"``, ``\\`` and U+0000 to
U+001F (the five short escapes, else ``\\u00xx`` in lowercase) and write every other
character as itself in UTF-8. They differ on floats (number formatting), on keys outside the
Basic Multilingual Plane (RFC 8785 sorts by UTF-16 code units, Python by code points), and on
lone surrogates (which RFC 8785 refuses). A value with any of these, or anything else, is
encoded by the ``rfc8785`` library, which stays the reference (a test compares the two over
generated events of every kind).
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

__all__ = ["canonical_json"]

_MAX_INT = 2**53 - 1
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode


def _in_bmp_without_surrogates(text: str) -> bool:
    # Every code point below U+D800, or in U+E000..U+FFFF: one UTF-16 unit, valid UTF-8.
    return text.isascii() or all(c < "\ud800" or "\ue000" <= c <= "\uffff" for c in text)


def _plain(value: Any) -> bool:
    """Whether ``value`` holds only what ``json`` encodes exactly as RFC 8785 does."""
    if isinstance(value, str):
        return True  # a lone surrogate fails the UTF-8 encoding in canonical_json
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -_MAX_INT <= value <= _MAX_INT
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and _in_bmp_without_surrogates(k) and _plain(v) for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return False  # floats, bytes, other types: the reference decides (and refuses what it refuses)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON of ``value`` (raises as ``rfc8785.dumps`` does for what it refuses)."""
    if _plain(value):
        try:
            return _encode(value).encode()
        except UnicodeEncodeError:
            pass  # a lone surrogate: the reference refuses it
    return bytes(rfc8785.dumps(value))
