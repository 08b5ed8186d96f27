"""What investigators and legal officers install: Client, AsyncClient, receipts and the `comity` CLI.

The names below are the SDK's public surface; they load lazily, so ``import comity.sdk`` stays
cheap for the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from comity.core.target import target_facts
    from comity.sdk.client import AsyncClient, Client, Identity
    from comity.sdk.query import QuerySpec, Selector
    from comity.sdk.result import RecordView, Result, UseRestrictionView

__all__ = [
    "AsyncClient",
    "Client",
    "Identity",
    "QuerySpec",
    "RecordView",
    "Result",
    "Selector",
    "UseRestrictionView",
    "target_facts",
]

_HOME = {
    "AsyncClient": "comity.sdk.client",
    "Client": "comity.sdk.client",
    "Identity": "comity.sdk.client",
    "QuerySpec": "comity.sdk.query",
    "Selector": "comity.sdk.query",
    "RecordView": "comity.sdk.result",
    "Result": "comity.sdk.result",
    "UseRestrictionView": "comity.sdk.result",
    # For tools that prepare orders for an authority to sign: the checked target facts.
    "target_facts": "comity.core.target",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'comity.sdk' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
