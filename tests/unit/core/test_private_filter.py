"""Golomb-coded filters of VOPRF outputs: membership, false positives, signatures."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from comity.core import voprf
from comity.core.errors import Unauthenticated
from comity.core.keys import SigningKey
from comity.core.private_filter import (
    GolombSet,
    commitment,
    selector_input,
    sign_segment,
    verify_segment,
)
from comity.v1 import comity_pb2 as pb


def _outputs(n: int, tag: bytes = b"in") -> list[bytes]:
    return [hashlib.sha512(tag + i.to_bytes(4, "big")).digest() for i in range(n)]


@pytest.mark.parametrize("interval", [1, 7, 1024])
def test_every_member_is_found(interval: int) -> None:
    members = _outputs(3000)
    golomb = GolombSet.build(members, index_interval=interval)
    assert all(golomb.contains(o) for o in members)


def test_non_members_are_rejected_at_about_the_configured_rate() -> None:
    members = _outputs(2000)
    golomb = GolombSet.build(members, inverse_fp_rate=64)
    strangers = _outputs(20000, b"out")
    false = sum(golomb.contains(o) for o in strangers)
    # Expected 20000/64 ≈ 312; a wide band so the test cannot flake.
    assert 150 < false < 500


def test_default_rate_rejects_non_members() -> None:
    golomb = GolombSet.build(_outputs(5000))
    assert not any(golomb.contains(o) for o in _outputs(5000, b"out"))


def test_empty_set_contains_nothing() -> None:
    golomb = GolombSet.build([])
    assert not golomb.contains(_outputs(1)[0])


def test_size_is_near_the_golomb_bound() -> None:
    n = 10000
    golomb = GolombSet.build(_outputs(n))
    bits_per_item = len(golomb.data) * 8 / n
    assert 30 < bits_per_item < 33  # log2(10^9) ≈ 29.9, plus about 1.5 for Rice coding


def test_with_voprf_outputs() -> None:
    key = voprf.generate_key_pair()
    inputs = [selector_input("EMAIL", f"user{i}@example.org") for i in range(50)]
    golomb = GolombSet.build(voprf.evaluate(key, x) for x in inputs)
    assert golomb.contains(voprf.evaluate(key, inputs[7]))
    assert not golomb.contains(voprf.evaluate(key, selector_input("EMAIL", "other@example.org")))
    # Another epoch's key gives unrelated outputs.
    assert not golomb.contains(voprf.evaluate(voprf.generate_key_pair(), inputs[7]))


def _header() -> pb.PrivateFilterHeader:
    expires = Timestamp()
    expires.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    return pb.PrivateFilterHeader(
        node_id="ca-node", selector_type=pb.EMAIL, category=pb.SUBSCRIBER, epoch=3, expires_at=expires
    )


def test_signed_segment_verifies_and_tampering_is_refused() -> None:
    key = SigningKey.generate("ca-node-response")
    golomb = GolombSet.build(_outputs(100))
    wire = sign_segment(_header(), golomb, key)
    keys = {key.key_id: key.verifying_key}
    segment = verify_segment(wire, node_id="ca-node", keys=keys)
    assert segment.header.epoch == 3 and segment.set.contains(_outputs(100)[5])
    assert not segment.stale(datetime.now(UTC))
    assert segment.stale(datetime.now(UTC) + timedelta(hours=2))

    tampered = pb.PrivateFilter()
    tampered.CopyFrom(wire)
    tampered.data = bytes([wire.data[0] ^ 1]) + wire.data[1:]
    with pytest.raises(Unauthenticated):
        verify_segment(tampered, node_id="ca-node", keys=keys)

    with pytest.raises(Unauthenticated):
        verify_segment(wire, node_id="us-node", keys=keys)

    forger = SigningKey.generate("ca-node-response")
    forged = sign_segment(_header(), golomb, forger)
    with pytest.raises(Unauthenticated):
        verify_segment(forged, node_id="ca-node", keys=keys)


def test_commitment_binds_salt_type_and_value() -> None:
    salt = bytes(32)
    c = commitment(salt, "EMAIL", "a@example.org")
    assert c != commitment(bytes([1]) + bytes(31), "EMAIL", "a@example.org")
    assert c != commitment(salt, "USERNAME", "a@example.org")
    assert c != commitment(salt, "EMAIL", "b@example.org")


@pytest.mark.parametrize("inverse", [2, 3, 64, 1000, 10**9])
def test_no_look_up_reads_past_the_last_value(inverse: int) -> None:
    # Values above the last member decode through the last byte's padding, whatever its length.
    for n in range(1, 40):
        golomb = GolombSet.build(_outputs(n), inverse_fp_rate=inverse, index_interval=4)
        assert all(golomb.contains(o) for o in _outputs(n))
        for o in _outputs(300, b"above"):
            golomb.contains(o)  # must not raise


def test_whole_days_rounds_a_range_inwards_to_utc_days() -> None:
    from datetime import UTC, datetime, timedelta

    from comity.core.private_filter import day_inside, whole_days

    tick = timedelta(microseconds=1)
    start, end = whole_days(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, tzinfo=UTC))
    assert start == datetime(2025, 1, 1, tzinfo=UTC)
    assert end == datetime(2025, 12, 31, tzinfo=UTC) - tick  # 31 December 00:00 holds no whole day
    start, end = whole_days(datetime(2025, 3, 1, 0, 0, 1, tzinfo=UTC), datetime(2025, 3, 3, 23, tzinfo=UTC))
    assert (start, end) == (datetime(2025, 3, 2, tzinfo=UTC), datetime(2025, 3, 3, tzinfo=UTC) - tick)
    assert whole_days(None, None) == (None, None)
    day = datetime(2025, 3, 2, tzinfo=UTC)
    assert day_inside(day, start, end) and day_inside(day, None, None)
    assert not day_inside(day + timedelta(days=1), start, end)
    assert not day_inside(day, day + tick, None) and not day_inside(day, None, day + timedelta(hours=23))
