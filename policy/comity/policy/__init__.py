"""The policy engine: Cedar bundles of the agreement's rules, evaluated fail-closed."""
