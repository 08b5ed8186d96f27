"""`comity demo`: a two-country federation on loopback, from nothing, in one command.

This package starts servers, so it imports the gateway and node packages; only the demo
command (and tests and benchmarks that reuse the demo federation) import it.
"""
