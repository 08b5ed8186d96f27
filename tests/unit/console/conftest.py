"""A demo federation and a real log of a few thousand entries, built once per module."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.console_log import BuiltLog, build_console_log
from comity.sdk.demo.setup import DemoFederation, build_demo_federation


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    return build_demo_federation(Path(tmp_path_factory.mktemp("federation")), people=5, seed=3)


@pytest.fixture(scope="module")
def built(demo: DemoFederation, tmp_path_factory: pytest.TempPathFactory) -> BuiltLog:
    import asyncio

    path = Path(tmp_path_factory.mktemp("log")) / "audit.db"
    return asyncio.run(build_console_log(demo, path, queries=700, seed=5))


@pytest.fixture
def log_copy(built: BuiltLog, tmp_path: Path) -> Path:
    """A copy of the log database a test may change."""
    copy = tmp_path / "audit.db"
    shutil.copy(built.path, copy)
    return copy
