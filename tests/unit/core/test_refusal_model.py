"""The refusal model: every check has a code and a rule, and both cross the RPC edge with any status."""

from __future__ import annotations

import grpc
import pytest

from comity.core import errors, refusals
from comity.core.refusals import Check
from comity.core.rpc import error_from_status, to_trailing_metadata

_PATTERN = Check(
    code="TEST_SELECTOR_PATTERN",
    rule="PARTICULARITY",
    status=grpc.StatusCode.INVALID_ARGUMENT,
    message="selectors[{index}] is a pattern; send one exact identifier per selector",
    legal_basis="18 U.S.C. §2523(b)(4)(D)(ii)",
)
_OWN_PERSON = Check(
    code="TEST_SUBJECT_OWN_PERSON",
    rule="NO_TARGETING",
    status=grpc.StatusCode.PERMISSION_DENIED,
    message="the node's records show the subject is one of its own country's persons",
    legal_basis="18 U.S.C. §2523(a)(2)",
    generic=True,
)


@pytest.fixture(autouse=True)
def _test_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Registered in a copy of the catalogue, so the documented catalogue never sees them.
    monkeypatch.setattr(refusals, "_CATALOGUE", dict(refusals.catalogue()))
    refusals.register(_PATTERN, _OWN_PERSON)


def _round_trip(err: errors.ComityError) -> errors.ComityError:
    return error_from_status(err.code, err.message, to_trailing_metadata(err))


def test_a_refusal_takes_the_status_of_its_check_and_names_rule_and_check() -> None:
    err = refusals.refuse("TEST_SELECTOR_PATTERN", index=2)
    assert isinstance(err, errors.InvalidArgument)
    assert err.rule_codes == ["PARTICULARITY"]
    assert err.check_codes == ["TEST_SELECTOR_PATTERN"]
    assert "selectors[2]" in err.message


def test_rules_travel_with_an_invalid_argument_status() -> None:
    also = refusals.violation("TEST_SELECTOR_PATTERN", index=0)
    back = _round_trip(refusals.refuse("TEST_SELECTOR_PATTERN", index=1, also=[also]))
    assert isinstance(back, errors.InvalidArgument)
    assert back.rule_codes == ["PARTICULARITY", "PARTICULARITY"]
    assert back.check_codes == ["TEST_SELECTOR_PATTERN", "TEST_SELECTOR_PATTERN"]


def test_a_generic_check_shows_the_requester_only_the_generic_code() -> None:
    err = refusals.refuse("TEST_SUBJECT_OWN_PERSON")
    back = _round_trip(err)
    assert back.rule_codes == [refusals.GENERIC_CODE]
    assert back.check_codes == [refusals.GENERIC_CODE]
    assert "own country" not in back.diagnostics()
    # The log side keeps the real check.
    assert refusals.violation("TEST_SUBJECT_OWN_PERSON").check == "TEST_SUBJECT_OWN_PERSON"


def test_a_code_cannot_be_registered_twice_with_other_content() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        refusals.register(Check("TEST_SELECTOR_PATTERN", "QUOTA", grpc.StatusCode.INVALID_ARGUMENT, "x", "y"))


def test_every_registered_check_names_a_rule_and_a_message() -> None:
    for code, check in refusals.catalogue().items():
        assert check.code == code
        assert check.rule and check.message and check.legal_basis, code


def test_the_generic_refusal_reads_the_same_in_core_and_in_every_shipped_bundle() -> None:
    from comity.policy.bundle import bundle_path
    from comity.policy.select import load_bundle

    root = bundle_path("us-ca-agreement").parent
    names = sorted(p.name for p in root.iterdir() if (p / "bundle.toml").exists())
    assert len(names) >= 3
    for name in names:
        generic = load_bundle(name).manifest.generic
        assert (generic.code, generic.message) == (refusals.GENERIC_CODE, refusals.GENERIC_MESSAGE), name
