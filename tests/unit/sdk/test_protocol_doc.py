"""docs/protocol.md states what the code does: payload types, limits, the records digest example."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from comity.core import dsse, queries, tokens
from comity.core.digests import records_digest
from comity.v1 import comity_pb2 as pb

DOC = (Path(__file__).resolve().parents[3] / "docs" / "protocol.md").read_text(encoding="utf-8")
# The prose as one line, for sentences the doc wraps.
PROSE = " ".join(DOC.split())


def _example_record() -> pb.Record:
    record = pb.Record(record_id="ca-node:acct-17", record_type="subscriber_account", category=pb.SUBSCRIBER)
    record.observed_at.FromDatetime(datetime(2025, 3, 1, 12, 0, tzinfo=UTC))
    record.fields.update({"status": "active", "email": "suspect@example.org"})
    return record


def test_the_worked_example_encodes_and_digests_as_documented() -> None:
    block = re.search(r"encodes to these (\d+) bytes.*?\n```\n(.*?)```", DOC, re.S)
    assert block is not None
    encoded = bytes.fromhex("".join(block.group(2).split()))
    record = _example_record()
    assert encoded == record.SerializeToString(deterministic=True)
    assert len(encoded) == int(block.group(1))
    digest = re.search(r"the digest of that one record is\n`([0-9a-f]{64})`", DOC)
    assert digest is not None and digest.group(1) == records_digest([record]).hex()
    assert f"`{records_digest([]).hex()}`" in DOC


def test_map_entries_keep_empty_keys_and_values() -> None:
    # The rule the doc states for clients that encode records themselves.
    record = pb.Record(fields={"": ""})
    assert record.SerializeToString(deterministic=True) == bytes.fromhex("2a040a001200")


def test_every_payload_type_is_documented() -> None:
    for name in dsse.__all__:
        if name.startswith("PAYLOAD_"):
            assert f"`{getattr(dsse, name)}`" in DOC, name


def test_the_documented_limits_are_the_codes() -> None:
    assert f"1 to {queries.MAX_QUERY_ID_LENGTH} characters" in PROSE
    assert queries.DEFAULT_FRESHNESS.total_seconds() == 5 * 60 and "within the last 5 minutes" in PROSE
    assert queries.DEFAULT_SKEW.total_seconds() == 30 and "at most 30 s ahead" in PROSE
    assert f"at most {dsse.MAX_SIGNATURES} signatures" in PROSE
    assert sorted(tokens.ALLOWED_ALGORITHMS) == ["ES256", "EdDSA"]
    for check in re.findall(r"`(TOKEN_[A-Z_]+)`", DOC):
        assert check in _token_checks(), check


def _token_checks() -> set[str]:
    from comity.core import refusals

    return {code for code in refusals._CATALOGUE if code.startswith("TOKEN_")}


def test_the_client_side_resubmission_rule_is_the_sdks() -> None:
    from comity.core import refusals
    from comity.gateway import pipeline  # noqa: F401  (registers LOG_UNAVAILABLE)
    from comity.sdk.failover import NOTHING_FORWARDED, Failover

    rule = PROSE[PROSE.index("The Python SDK's rule") : PROSE.index("Reads (`GetPrivateFilters`")]
    assert set(re.findall(r"`([A-Z]+_UNAVAILABLE)`", rule)) == NOTHING_FORWARDED
    for code in NOTHING_FORWARDED:
        assert refusals.catalogue()[code].status.name == "UNAVAILABLE"
    defaults = Failover()
    assert (defaults.resubmissions, defaults.backoff_seconds, defaults.max_backoff_seconds) == (3, 0.05, 1.0)
    assert "3 more by default, backoff from 50 ms doubling to at most 1 s" in rule
