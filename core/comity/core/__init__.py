"""Shared pieces of Comity: envelopes and signatures, keys, federation config, errors, telemetry."""
