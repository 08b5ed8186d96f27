"""Deriving the Cedar context: selector patterns, justification measures, boilerplate."""

from __future__ import annotations

import pytest

from comity.policy import PolicyBundle
from comity.policy.context import distinct_words, pattern_selector


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("EMAIL", "*@example.net"),
        ("EMAIL", "a%@example.net"),
        ("PHONE", "+1555555010?"),
        ("PHONE", "+15555550100..+15555550199"),
        ("ACCOUNT_ID", "acct-1,acct-2"),
        ("ACCOUNT_ID", "   "),
        ("ACCOUNT_ID", ""),
        ("USERNAME", "[a-z]+"),
        ("IP_ADDRESS", "203.0.113.0/24"),
    ],
)
def test_patterns_ranges_and_lists_are_not_exact_selectors(kind: str, value: str) -> None:
    assert pattern_selector(kind, value)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("EMAIL", "first.last+tag@example.net"),
        ("PHONE", "+15555550100"),
        ("IP_ADDRESS", "2001:db8::1"),
        ("ACCOUNT_ID", "provider/acct-19"),  # a slash is only a CIDR block in an IP address
        ("VEHICLE_VIN", "1HGCM82633A004352"),
    ],
)
def test_exact_selectors_pass(kind: str, value: str) -> None:
    assert not pattern_selector(kind, value)


def test_distinct_words_ignore_repetition_and_single_letters() -> None:
    assert distinct_words("ransom ransom RANSOM a b c") == 1
    # "3" is too short to count; "2026" and "40" count as words.
    assert distinct_words("On 3 March 2026 the group demanded 40 bitcoin") == 8
    assert distinct_words("") == 0


@pytest.mark.parametrize(
    ("facts", "link", "boilerplate"),
    [
        ("Ongoing   investigation!", "The address sent the ransom demand.", True),
        ("On 3 March the group encrypted the hospital network.", "See attached", True),
        ("Details: TBD.", "The address sent the ransom demand.", True),
        ("Same text here for both fields.", "Same text  here for both fields", True),
        (
            "On 3 March the group encrypted the hospital network.",
            "The address sent the ransom demand.",
            False,
        ),
        # A placeholder is a whole word: "xxxl" or "todos" are not placeholders.
        ("Suspect bought XXXL jackets with todos los fondos.", "The address sent the ransom demand.", False),
    ],
)
def test_boilerplate(agreement: PolicyBundle, facts: str, link: str, boilerplate: bool) -> None:
    assert agreement.justification.is_boilerplate(facts, link) is boilerplate
