"""Justification quality: boilerplate by similarity to the corpus, the labelled set, the reuse fact."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FactsOf, MakeBundle

from comity.policy import PolicyBundle, PolicyEngine, bundle_path
from comity.policy.errors import BundleError
from comity.policy.justification import JustificationStandard, LabelledSet, content_words

BUNDLES = ("us-ca-agreement", "us-inbound", "ca-inbound")
DOCS = Path(__file__).resolve().parents[3] / "docs" / "policy.md"
REAL_LINK = "The address appears in the ransom note and sent the follow-up extortion messages."

# Boilerplate as people pad it to get past a word count: reordered, a few words added, mixed.
PADDED = [
    "Criminal investigation, ongoing: the information is material and relevant, urgently needed.",
    "Our unit asks: data needed for the investigation, the target is a suspect, law enforcement purposes.",
    "Suspect is the target. Please provide all available records for the investigation of this matter.",
    "Relevant to an ongoing investigation of serious crime, the requested records will assist to identify.",
    "ONGOING INVESTIGATION!!! The selector belongs to a person of interest -- see attached warrant, thanks.",
]
# Case-specific facts, some in the investigator's usual words ("ongoing investigation", "suspect").
REAL = [
    "On 3 March 2026 ransomware encrypted the network of a Columbus hospital; its makers demanded 40 BTC.",
    "In our ongoing investigation the suspect, seen on camera at the Surrey bus loop at 23:04 on 9 January, "
    "dropped a phone while running from the stabbing.",
    "A 14-year-old girl in Calgary received 37 messages between 12 and 19 January demanding nude images.",
]


@pytest.fixture(scope="module")
def standard() -> JustificationStandard:
    return PolicyBundle.load(bundle_path("us-ca-agreement")).justification


@pytest.mark.parametrize("text", PADDED)
def test_padded_and_reordered_boilerplate_is_refused(
    engine: PolicyEngine, facts_of: FactsOf, text: str
) -> None:
    d = engine.decide(facts_of(justification_facts=text))
    assert not d.allowed
    assert d.codes == ["JUSTIFICATION"]
    assert "specific to this case" in d.violations[0].message


@pytest.mark.parametrize("text", PADDED)
def test_padded_boilerplate_is_refused_as_a_link_too(
    engine: PolicyEngine, facts_of: FactsOf, text: str
) -> None:
    assert engine.decide(facts_of(justification_link=text)).codes == ["JUSTIFICATION"]


@pytest.mark.parametrize("text", REAL)
def test_real_looking_justifications_are_allowed(engine: PolicyEngine, facts_of: FactsOf, text: str) -> None:
    d = engine.decide(facts_of(justification_facts=text, justification_link=REAL_LINK))
    assert d.allowed, d.violations


@pytest.mark.parametrize("name", ("us-inbound", "ca-inbound"))
def test_the_nodes_refuse_padded_boilerplate(facts_of: FactsOf, name: str) -> None:
    engine = PolicyEngine(PolicyBundle.load(bundle_path(name)))
    assert engine.decide(facts_of(name)).allowed
    assert engine.decide(facts_of(name, justification_facts=PADDED[0])).codes == ["JUSTIFICATION"]


def test_the_case_reference_is_not_a_fact(standard: JustificationStandard) -> None:
    text = "FBI-2026-CY-00417 the target is a suspect, data needed for the investigation"
    assert standard.score(text) < standard.threshold_percent  # the reference's words dilute it
    assert standard.is_boilerplate(text, REAL_LINK, case_reference="FBI-2026-CY-00417")


def test_normalisation_ignores_case_punctuation_stop_words_and_endings() -> None:
    stop = frozenset({"the", "was", "to", "a"})
    assert content_words("The RECORDS were needed -- to identify: a suspect!", stop) == [
        "record",
        "were",
        "need",
        "identify",
        "suspect",
    ]
    assert content_words("identifying identified identifies", stop) == ["identify", "identify", "identify"]
    # Not plurals; numbers of any length are facts; single letters are not.
    assert content_words("address status 3 x 40", stop) == ["address", "status", "3", "40"]


def test_a_text_without_content_words_is_boilerplate(standard: JustificationStandard) -> None:
    assert standard.score("it is what it is, and that is that") == 100
    assert standard.score("") == 100


def test_the_score_ignores_order_and_counts_padding_by_its_share(standard: JustificationStandard) -> None:
    base = "the requested data is necessary for the investigation"
    assert standard.score(base) == 100
    assert standard.score("for the investigation the necessary data is requested") == 100
    # Four new words beside four of the corpus: half of the text is boilerplate.
    assert standard.score(base + " hospital Columbus ransomware bitcoin") == 50


# ---------------------------------------------------------------------- the labelled set


def _labelled(name: str) -> LabelledSet:
    path = bundle_path(name) / "justification_cases.toml"
    return LabelledSet.parse(path.read_text(encoding="utf-8"), source=str(path))


@pytest.mark.parametrize("name", BUNDLES)
def test_labelled_set_rates_are_no_worse_than_recorded(name: str) -> None:
    labelled = _labelled(name)
    rates = labelled.measure(PolicyBundle.load(bundle_path(name)).justification)
    assert rates.real >= 50 and rates.boilerplate >= 50
    assert rates.false_refusals <= labelled.recorded_false_refusals
    assert rates.false_passes <= labelled.recorded_false_passes


def test_the_recorded_rates_are_the_documented_ones() -> None:
    labelled = _labelled("us-ca-agreement")
    rates = labelled.measure(PolicyBundle.load(bundle_path("us-ca-agreement")).justification)
    doc = DOCS.read_text(encoding="utf-8")
    assert f"{rates.false_refusals} of {rates.real} real justifications" in doc
    assert f"{rates.false_passes} of {rates.boilerplate} boilerplate ones" in doc
    assert rates.false_refusals == labelled.recorded_false_refusals
    assert rates.false_passes == labelled.recorded_false_passes
    # The bundles ship one standard: a node must not call boilerplate what the gateway lets pass.
    for name in BUNDLES:
        for file in ("justification.toml", "justification_cases.toml"):
            assert (bundle_path(name) / file).read_bytes() == (
                bundle_path("us-ca-agreement") / file
            ).read_bytes()


def _threshold(percent: str) -> str:
    """The agreement's justification.toml with another threshold."""
    text = (bundle_path("us-ca-agreement") / "justification.toml").read_text(encoding="utf-8")
    changed = re.sub(r"^threshold_percent = \d+", f"threshold_percent = {percent}", text, flags=re.MULTILINE)
    assert changed != text
    return changed


def test_a_bundle_whose_threshold_gets_worse_does_not_load(make_bundle: MakeBundle) -> None:
    for threshold in ("20", "99"):  # too strict: false refusals; too lax: false passes
        root = make_bundle(files={"justification.toml": _threshold(threshold)})
        with pytest.raises(BundleError, match="labelled set") as exc:
            PolicyBundle.load(root)
        assert exc.value.source == "justification.toml"


def test_a_labelled_set_too_small_to_tune_on_is_refused(make_bundle: MakeBundle) -> None:
    cases = bundle_path("us-ca-agreement") / "justification_cases.toml"
    text = cases.read_text(encoding="utf-8")
    first_boilerplate = text.index("[[boilerplate]]")
    small = (
        text[: text.index("[[real]]")] + '[[real]]\nfacts = "x"\nlink = "y"\n\n' + text[first_boilerplate:]
    )
    with pytest.raises(BundleError, match="at least 50"):
        PolicyBundle.load(make_bundle(files={"justification_cases.toml": small}))


@pytest.mark.parametrize("percent", ("0", "101"))
def test_threshold_must_be_a_percentage(make_bundle: MakeBundle, percent: str) -> None:
    root = make_bundle(files={"justification.toml": _threshold(percent)})
    with pytest.raises(BundleError, match="threshold_percent"):
        PolicyBundle.load(root)


# ---------------------------------------------------------------------- the reuse fact


def test_reused_facts_are_refused_with_what_to_write_instead(engine: PolicyEngine, facts_of: FactsOf) -> None:
    d = engine.decide(facts_of(justification_reused=True))
    assert d.codes == ["JUSTIFICATION"]
    assert "new one for a new case" in d.violations[0].message


def test_the_gateway_bundle_refuses_when_the_reuse_fact_is_unknown(
    engine: PolicyEngine, facts_of: FactsOf
) -> None:
    # A gateway that did not look its signatures up must not be read as "not reused".
    d = engine.decide(facts_of(justification_reused=None))
    assert not d.allowed and "POLICY_ERROR" in d.codes


@pytest.mark.parametrize("name", ("us-inbound", "ca-inbound"))
def test_a_node_bundle_does_not_take_the_reuse_fact(facts_of: FactsOf, name: str) -> None:
    engine = PolicyEngine(PolicyBundle.load(bundle_path(name)))
    facts = facts_of(name)
    assert facts.justification_reused is None and engine.decide(facts).allowed
    assert "POLICY_ERROR" in engine.decide(replace(facts, justification_reused=False)).codes
