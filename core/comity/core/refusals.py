"""One refusal model for every check of the gateway and the nodes.

Every check that can refuse a request has a stable **check code** (``ORDER_EXPIRED``,
``SELECTOR_PATTERN``, ...) and names the **agreement rule** it enforces (``PARTICULARITY``,
``INDEPENDENT_AUTHORISATION``, ...). A refusal travels as a :class:`RuleViolationInfo` on the
raised :class:`ComityError`, whatever its status code, so the requester's status details and the
transparency log carry both codes. Policy rules are checks too: their check code is the rule id.

Checks whose reason would itself reveal something about the target (the target is one of the
responding country's own persons) are ``generic``: the requester sees only :data:`GENERIC_CODE`
with :data:`GENERIC_MESSAGE`, and the real check is kept for the log's sealed part.

Components register their checks with :func:`register` at import time (one catalogue per
component module), and raise with :func:`refuse`; ``docs/audit.md`` lists the catalogue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import grpc

from comity.core import errors

__all__ = [
    "GENERIC_CODE",
    "GENERIC_MESSAGE",
    "Check",
    "catalogue",
    "public_violation",
    "refuse",
    "register",
    "violation",
]

GENERIC_CODE = "REFUSED"
# The same words as every shipped bundle's generic refusal (a test holds them equal): two texts
# would let a requester tell which check refused.
GENERIC_MESSAGE = (
    "The query cannot be served under the agreement. Consult your agency's legal officer before resubmitting."
)


@dataclass(frozen=True, slots=True)
class Check:
    """One named check: what it refuses, under which rule, with which status and words.

    ``message`` is public: what is wrong and how to fix it, never a selector value or an
    internal name. It may hold ``{placeholders}`` filled by :func:`refuse`.
    """

    code: str
    rule: str
    status: grpc.StatusCode
    message: str
    legal_basis: str
    generic: bool = False


_CATALOGUE: dict[str, Check] = {}


def register(*checks: Check) -> None:
    """Add ``checks`` to the catalogue; a code registered twice with other content is a bug."""
    for check in checks:
        known = _CATALOGUE.get(check.code)
        if known is not None and known != check:
            raise ValueError(f"check code {check.code!r} registered twice with different content")
        _CATALOGUE[check.code] = check


def catalogue() -> Mapping[str, Check]:
    """Every registered check by code (for docs, the console and tests)."""
    return MappingProxyType(_CATALOGUE)


def violation(code: str, **values: object) -> errors.RuleViolationInfo:
    """The full (log-side) violation of check ``code``, its message filled with ``values``."""
    check = _CATALOGUE[code]
    return errors.RuleViolationInfo(
        check.rule, check.message.format(**values), check.legal_basis, check=check.code
    )


def public_violation(code: str, **values: object) -> errors.RuleViolationInfo:
    """What the requester may see of check ``code``: the generic refusal for a generic check."""
    check = _CATALOGUE[code]
    if check.generic:
        return errors.RuleViolationInfo(GENERIC_CODE, GENERIC_MESSAGE, "", check=GENERIC_CODE)
    return violation(code, **values)


def refuse(
    code: str, *, also: Iterable[errors.RuleViolationInfo] = (), hint: str | None = None, **values: object
) -> errors.ComityError:
    """The error to raise for check ``code`` (with any further violations found at once).

    The error's class follows the check's status; its violations are the public ones.
    """
    check = _CATALOGUE[code]
    first = public_violation(code, **values)
    cls = errors.error_class(check.status)
    return cls(first.message, hint=hint, violations=[first, *also])
