"""Errors of the policy component."""

from __future__ import annotations

from comity.core.errors import ConfigError

__all__ = ["BundleError"]


class BundleError(ConfigError):
    """A policy bundle is invalid or its own tests fail; the message names the file and field.

    A component refuses to start with a bundle that raises this (fail closed).
    """
