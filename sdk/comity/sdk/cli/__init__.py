"""The `comity` command line."""
