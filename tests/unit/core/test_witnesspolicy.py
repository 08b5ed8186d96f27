"""The witness policy: thresholds, the majority rule, and that no two disjoint sets form a quorum."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from comity.core.errors import NotFound
from comity.core.keyhistory import KeyHistory
from comity.core.keys import SigningKey
from comity.core.witnesspolicy import (
    WitnessGroup,
    WitnessIdentity,
    WitnessPolicy,
    WitnessPolicyError,
    parse_duration,
)

US = WitnessGroup("US", "US", ("us-node", "us-node-2", "us-node-3"), 2)
CA = WitnessGroup("CA", "CA", ("ca-node",), 1)
NGO = WitnessGroup("independent", None, ("ngo", "court"), 2)


def test_a_quorum_needs_every_group_and_counts_each_witness_once() -> None:
    policy = WitnessPolicy((US, CA, NGO))
    assert policy.is_quorum(["us-node", "us-node-3", "ca-node", "ngo", "court"])
    assert not policy.is_quorum(["us-node", "us-node-3", "ngo", "court"])
    # The same witness twice is one cosignature.
    assert not policy.is_quorum(["us-node", "us-node", "ca-node", "ngo", "court"])
    # Witnesses of no group count for nothing.
    assert not policy.is_quorum(["us-node", "stranger", "ca-node", "ngo", "court"])
    assert policy.missing(["us-node", "ngo"]) == {"US": 1, "CA": 1, "independent": 1}
    assert policy.missing(["us-node", "us-node-2", "ca-node", "ngo", "court"]) == {}
    assert policy.group_of_country("CA") == CA
    with pytest.raises(NotFound, match="'FR'"):
        policy.group_of_country("FR")
    assert policy.max_delay == timedelta(seconds=30)


def test_a_policy_without_groups_has_no_quorum() -> None:
    assert not WitnessPolicy(()).is_quorum(["anyone"])


@pytest.mark.parametrize(
    ("groups", "index", "field", "why"),
    [
        ((WitnessGroup("US", "US", ("a", "b"), 1),), 0, "threshold", "must exceed half, at least 2"),
        ((WitnessGroup("X", None, ("a", "b", "c", "d"), 2),), 0, "threshold", "two disjoint sets"),
        ((WitnessGroup("US", "US", ("a",), 0),), 0, "threshold", "between 1 and its 1"),
        ((WitnessGroup("US", "US", ("a",), 2),), 0, "threshold", "between 1 and its 1"),
        ((WitnessGroup("US", "US", (), 1),), 0, "witnesses", "no witnesses"),
        ((US, WitnessGroup("X", None, ("us-node-2",), 1)), 1, "witnesses", "group 'US'"),
        ((WitnessGroup("X", None, ("a", "a"), 2),), 0, "witnesses", "twice in this group"),
        ((CA, WitnessGroup("CA", None, ("b",), 1)), 1, "", "already defined"),
    ],
    ids=["half", "half-of-four", "zero", "above-n", "empty", "two-groups", "twice", "same-name"],
)
def test_a_bad_policy_is_refused_naming_the_group(
    groups: tuple[WitnessGroup, ...], index: int, field: str, why: str
) -> None:
    with pytest.raises(WitnessPolicyError, match=why) as info:
        WitnessPolicy(groups)
    assert (info.value.group, info.value.field) == (index, field)


def test_max_delay_must_be_positive_and_durations_parse() -> None:
    with pytest.raises(WitnessPolicyError) as info:
        WitnessPolicy((CA,), timedelta(0))
    assert info.value.field == "max_delay"
    assert parse_duration("30s") == timedelta(seconds=30)
    assert parse_duration("500ms") == timedelta(milliseconds=500)
    assert parse_duration("2m") == timedelta(minutes=2)
    assert parse_duration("1h") == timedelta(hours=1)
    for bad in ("30", "1d", "-1s", "s", "1.5s"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


def test_the_default_policy_is_every_country_with_all_of_its_witnesses() -> None:
    keys = KeyHistory.single(SigningKey.generate("x").verifying_key)
    witnesses = [
        WitnessIdentity("us-1", "us-1", "US", "h:1", keys),
        WitnessIdentity("ca-1", "ca-1", "CA", "h:2", keys),
        WitnessIdentity("us-2", "us-2", "US", "h:3", keys),
        WitnessIdentity("ngo", "ngo", None, "h:4", keys),
    ]
    policy = WitnessPolicy.every_country(witnesses)
    assert policy.groups == (
        WitnessGroup("US", "US", ("us-1", "us-2"), 2),
        WitnessGroup("CA", "CA", ("ca-1",), 1),
    )


# ---------------------------------------------------------------------- the property


@st.composite
def policies(draw: st.DrawFn) -> WitnessPolicy:
    """Any policy the rules accept: up to 4 groups of 1 to 6 witnesses; thresholds near the bound."""
    sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
    groups = []
    for g, n in enumerate(sizes):
        # Half (refused when n is even) up to all: the candidates nearest the rule's edge.
        threshold = draw(st.integers(max(1, n // 2), n))
        groups.append(WitnessGroup(f"g{g}", None, tuple(f"w{g}.{i}" for i in range(n)), threshold))
    try:
        return WitnessPolicy(tuple(groups))
    except WitnessPolicyError:
        assume(False)
        raise


@given(policy=policies(), data=st.data())
def test_no_two_disjoint_sets_of_witnesses_both_form_a_quorum(
    policy: WitnessPolicy, data: st.DataObject
) -> None:
    witnesses = [w for g in policy.groups for w in g.witnesses] + ["outsider"]
    # Each witness goes to the first set, the second, or neither: the sets are disjoint by construction.
    sides = data.draw(st.lists(st.sampled_from("ab-"), min_size=len(witnesses), max_size=len(witnesses)))
    first = {w for w, s in zip(witnesses, sides, strict=True) if s == "a"}
    second = {w for w, s in zip(witnesses, sides, strict=True) if s == "b"}
    assert not (policy.is_quorum(first) and policy.is_quorum(second))


@given(n=st.integers(1, 8), data=st.data())
def test_every_threshold_the_rule_refuses_would_allow_two_disjoint_quorums(
    n: int, data: st.DataObject
) -> None:
    threshold = data.draw(st.integers(1, n))
    group = WitnessGroup("g", None, tuple(f"w{i}" for i in range(n)), threshold)
    if 2 * threshold > n:
        WitnessPolicy((group,))
        return
    with pytest.raises(WitnessPolicyError):
        WitnessPolicy((group,))
    # The refusal is not over-cautious: two disjoint quorums really exist under such a threshold.
    unchecked = object.__new__(WitnessPolicy)
    object.__setattr__(unchecked, "groups", (group,))
    object.__setattr__(unchecked, "max_delay", timedelta(seconds=30))
    assert unchecked.is_quorum(group.witnesses[:threshold])
    assert unchecked.is_quorum(group.witnesses[threshold : 2 * threshold])
