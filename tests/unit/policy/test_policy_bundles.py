"""Loading bundles: the shipped ones pass their own tests; broken ones are refused by name."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import PERMIT, QUOTA, QUOTA_TESTS, MakeBundle

from comity.policy import BundleError, PolicyBundle, bundle_digest, bundle_path
from comity.policy.bundle import bundle_roots

SHIPPED = ["us-ca-agreement", "ca-inbound", "us-inbound"]
RULES = {
    "SERIOUS_CRIME",
    "NO_TARGETING",
    "PARTICULARITY",
    "INDEPENDENT_AUTHORISATION",
    "JUSTIFICATION",
    "DATA_CATEGORY_TIERS",
    "NO_THIRD_GOVERNMENT",
    "USE_RESTRICTIONS",
    "TWO_STEP",
    "QUOTA",
}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_bundle_loads_and_passes_its_tests(name: str) -> None:
    bundle = PolicyBundle.load(bundle_path(name))
    assert bundle.name == name
    assert bundle.run_tests() == []
    gateway_only = {"EMERGENCY_VALIDATION"} if name == "us-ca-agreement" else set()
    node_only = set() if name == "us-ca-agreement" else {"NO_TARGETING_RECORDS", "NO_TARGETING_RECORDS_LIMIT"}
    assert {r.id for r in bundle.rules if r.effect == "forbid"} == RULES | gateway_only | node_only
    assert bundle.digest.startswith("sha256:") and len(bundle.digest) == 7 + 64
    assert [r.code for r in bundle.use_restrictions][:2] == ["NO_DEATH_PENALTY_USE", "NO_ONWARD_TRANSFER"]


def test_manifests_state_scope_and_country() -> None:
    agreement = PolicyBundle.load(bundle_path("us-ca-agreement")).manifest
    ca = PolicyBundle.load(bundle_path("ca-inbound")).manifest
    assert (agreement.scope, agreement.country) == ("gateway", "")
    assert (ca.scope, ca.country) == ("node", "CA")
    assert agreement.effective == dt.date(2026, 1, 1)
    assert agreement.generic.code == "REFUSED" and agreement.generic.rules == {"NO_TARGETING"}


def test_catalogue_has_serious_and_minor_offences_of_both_parties(agreement: PolicyBundle) -> None:
    cat = agreement.catalogue
    ransomware = cat.lookup("US", "18 USC 1030(a)(7)")
    assert ransomware is not None and ransomware.max_penalty_years >= 3
    extortion = cat.lookup("CA", "CC 346")
    assert extortion is not None and extortion.max_penalty_years == 99  # life
    assert cat.lookup("US", "CC 346") is None  # keyed by the issuing country
    minor = [o for o in cat if o.max_penalty_years < 3]
    assert {o.country for o in minor} == {"US", "CA"}
    assert any(o.speech_related for o in cat)


def test_digest_is_over_sorted_names_and_contents() -> None:
    files = {"b.txt": b"2", "a.txt": b"1"}
    assert bundle_digest(files) == bundle_digest(dict(sorted(files.items())))
    assert bundle_digest(files) != bundle_digest({"a.txt": b"1", "b.txt": b"3"})
    assert bundle_digest(files) != bundle_digest({"a.txt": b"1", "c.txt": b"2"})
    # Moving bytes between name and content changes the digest (length prefixes).
    assert bundle_digest({"ab": b"c"}) != bundle_digest({"a": b"bc"})


def test_digest_changes_when_a_rule_changes(make_bundle: MakeBundle) -> None:
    first = PolicyBundle.load(make_bundle()).digest
    changed = QUOTA.replace("quota used up", "quota exhausted")
    second = PolicyBundle.load(make_bundle(rules={"PARTIES": PERMIT, "QUOTA": changed})).digest
    assert first != second


def test_bundle_path_finds_wheel_and_source_layouts(tmp_path: Path) -> None:
    package = tmp_path / "site" / "comity" / "policy"
    assert bundle_roots(package)[0] == package / "bundles"  # wheel: comity/policy/bundles
    source = tmp_path / "policy" / "comity" / "policy"
    assert bundle_roots(source)[1] == tmp_path / "policy" / "bundles"  # checkout: policy/bundles
    assert bundle_path("ca-inbound").name == "ca-inbound"


@pytest.mark.parametrize("name", ["", "../us-ca-agreement", ".hidden", "no-such-bundle"])
def test_bundle_path_refuses_unknown_names(name: str) -> None:
    with pytest.raises(BundleError):
        bundle_path(name)


def _refused(path: Path) -> str:
    with pytest.raises(BundleError) as info:
        PolicyBundle.load(path)
    return str(info.value)


def test_small_bundle_loads(make_bundle: MakeBundle) -> None:
    bundle = PolicyBundle.load(make_bundle())
    assert [r.id for r in bundle.rules] == ["PARTIES", "QUOTA"]
    assert bundle.permit.id == "PARTIES"


def test_refuses_a_missing_file(make_bundle: MakeBundle) -> None:
    assert "offences.toml: required file is missing" in _refused(make_bundle(files={"offences.toml": None}))


def test_refuses_an_unexpected_file(make_bundle: MakeBundle) -> None:
    assert "notes.txt: unexpected file" in _refused(make_bundle(files={"notes.txt": "hello"}))


def test_refuses_invalid_toml(make_bundle: MakeBundle) -> None:
    assert "justification.toml: not valid TOML" in _refused(make_bundle(files={"justification.toml": "x ="}))


def test_refuses_a_misspelt_manifest_key(make_bundle: MakeBundle) -> None:
    root = make_bundle()
    manifest = (root / "bundle.toml").read_text(encoding="utf-8")
    (root / "bundle.toml").write_text(manifest.replace("version =", "verison ="), encoding="utf-8")
    assert "bundle.toml: version: is missing (expected a string)" in _refused(root)


def test_refuses_a_bundle_for_another_cedar_major(make_bundle: MakeBundle) -> None:
    root = make_bundle()
    manifest = (root / "bundle.toml").read_text(encoding="utf-8")
    (root / "bundle.toml").write_text(
        manifest.replace("cedar_major = 4", "cedar_major = 3"), encoding="utf-8"
    )
    assert "cedar_major" in _refused(root)


def test_refuses_a_bundle_not_yet_in_effect(make_bundle: MakeBundle) -> None:
    root = make_bundle()
    with pytest.raises(BundleError, match="not in effect before 2026-01-01"):
        PolicyBundle.load(root, today=dt.date(2025, 12, 31))
    assert PolicyBundle.load(root, today=dt.date(2026, 1, 1)).version == "2.0.0"


def test_refuses_an_invalid_schema(make_bundle: MakeBundle) -> None:
    assert "not a valid Cedar schema" in _refused(make_bundle(files={"schema.cedarschema": "namespace {"}))


def test_refuses_a_rule_without_legal_basis(make_bundle: MakeBundle) -> None:
    rule = QUOTA.replace('@legal_basis("test quota")\n', "")
    message = _refused(make_bundle(rules={"PARTIES": PERMIT, "QUOTA": rule}))
    assert "rules/QUOTA.cedar" in message and "@legal_basis" in message


def test_refuses_a_rule_whose_id_is_not_its_file_name(make_bundle: MakeBundle) -> None:
    message = _refused(make_bundle(rules={"PARTIES": PERMIT, "QUOTA_2": QUOTA}))
    assert "rules/QUOTA_2.cedar" in message and "file name" in message


def test_refuses_two_policies_in_one_file(make_bundle: MakeBundle) -> None:
    message = _refused(make_bundle(rules={"PARTIES": PERMIT, "QUOTA": QUOTA + QUOTA}))
    assert "exactly one policy" in message


def test_refuses_a_rule_that_does_not_parse(make_bundle: MakeBundle) -> None:
    message = _refused(make_bundle(rules={"PARTIES": PERMIT, "QUOTA": "forbid (principal"}))
    assert "rules/QUOTA.cedar: Cedar does not parse it" in message


def test_refuses_a_bundle_without_a_permit(make_bundle: MakeBundle) -> None:
    assert "exactly one permit" in _refused(make_bundle(rules={"QUOTA": QUOTA}))


def test_refuses_a_rule_the_schema_does_not_validate(make_bundle: MakeBundle) -> None:
    typo = QUOTA.replace("investigator_today", "investigators_today")
    message = _refused(make_bundle(rules={"PARTIES": PERMIT, "QUOTA": typo}))
    assert "do not validate against the schema" in message and "QUOTA" in message


def test_refuses_a_bundle_whose_tests_fail(make_bundle: MakeBundle) -> None:
    wrong = QUOTA_TESTS.replace("investigator_queries_today = 50", "investigator_queries_today = 49")
    message = _refused(make_bundle(tests=wrong))
    assert "bundle test(s) fail" in message and "quota: allowed=True, expected False" in message


def test_refuses_a_rule_no_test_case_exercises(make_bundle: MakeBundle) -> None:
    only_allowed = '[[case]]\nname = "allowed"\nallowed = true\n'
    assert "rule QUOTA fires in no test case" in _refused(make_bundle(tests=only_allowed))


def test_refuses_a_test_case_with_an_unknown_fact(make_bundle: MakeBundle) -> None:
    bad = QUOTA_TESTS.replace("investigator_queries_today = 50", "investigator_queries = 50")
    assert "unknown fact(s): investigator_queries" in _refused(make_bundle(tests=bad))


def test_refuses_generic_rules_that_do_not_exist(make_bundle: MakeBundle) -> None:
    root = make_bundle()
    manifest = (root / "bundle.toml").read_text(encoding="utf-8")
    (root / "bundle.toml").write_text(
        manifest.replace("generic_rules = []", 'generic_rules = ["NOPE"]'), "utf-8"
    )
    assert "no forbid rule named ['NOPE']" in _refused(root)


def test_refuses_entities_that_do_not_match_the_schema(make_bundle: MakeBundle) -> None:
    bad = '[{"uid": {"type": "Comity::Country", "id": "CA"}, "attrs": {}, "parents": []}]'
    assert "entities.json: entities do not match the schema" in _refused(
        make_bundle(files={"entities.json": bad})
    )


def test_refuses_an_unknown_withholding_subject(make_bundle: MakeBundle) -> None:
    root = make_bundle()
    text = (root / "minimisation.toml").read_text(encoding="utf-8")
    (root / "minimisation.toml").write_text(
        text.replace('"responding_country_persons"', '"everyone"'), "utf-8"
    )
    assert "minimisation.toml: withhold[0].about" in _refused(root)


def test_refuses_a_symbolic_link(make_bundle: MakeBundle) -> None:
    root = make_bundle()
    (root / "rules" / "LINK.cedar").symlink_to(root / "rules" / "QUOTA.cedar")
    assert "rules/LINK.cedar: symbolic links are not allowed" in _refused(root)


def test_refuses_a_nested_rule_folder(make_bundle: MakeBundle) -> None:
    root = make_bundle()
    (root / "rules" / "old").mkdir()
    assert "rules/old: unexpected folder" in _refused(root)
