"""Choosing a bundle from a configuration value: a shipped bundle's name or a folder."""

from __future__ import annotations

from pathlib import Path

from comity.policy.bundle import PolicyBundle, bundle_path

__all__ = ["load_bundle"]


def load_bundle(name_or_path: str) -> PolicyBundle:
    """Load (validate and self-test) a bundle given by name, e.g. ``ca-inbound``, or by folder path."""
    path = Path(name_or_path)
    return PolicyBundle.load(path if path.is_dir() else bundle_path(name_or_path))
