"""A running two-country federation on loopback, shared by the end-to-end tests of a module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from comity.sdk.demo.run import RunningFederation, running_federation
from comity.sdk.demo.setup import DemoFederation, build_demo_federation


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    """Keys, certificates, configs and 40 synthetic people per node (built once per module)."""
    return build_demo_federation(Path(tmp_path_factory.mktemp("federation")), people=40, seed=7)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def running(federation: DemoFederation) -> AsyncIterator[RunningFederation]:
    """Both nodes and the gateway, started from the federation's config files."""
    async with running_federation(federation) as r:
        yield r
