"""What a requester is told when the gateway's log cannot be written: the query's fate, in words."""

from __future__ import annotations

import grpc
import pytest

from comity.audit.errors import AuditUnavailable
from comity.gateway.pipeline import _log_down


@pytest.mark.parametrize(
    ("disclosing", "fate"),
    [(False, "nothing was forwarded or released"), (True, "nothing was released to you")],
)
def test_the_requester_learns_what_happened_and_not_the_operators_hint(disclosing: bool, fate: str) -> None:
    down = AuditUnavailable(
        "the audit log cannot append entries: the database is unreachable",
        hint="check that the log database is reachable and writable",
        why="the database is unreachable",
    )
    err = _log_down(down, disclosing=disclosing)
    assert err.code == grpc.StatusCode.UNAVAILABLE
    assert "cannot write its audit log (the database is unreachable)" in err.message
    assert fate in err.message
    assert err.hint is not None and "again later" in err.hint
    assert "log database" not in err.diagnostics()  # the operator's hint stays in the server's log


def test_a_failure_without_a_known_cause_is_still_worded() -> None:
    err = _log_down(AuditUnavailable("the audit log is closed"), disclosing=False)
    assert err.message.startswith("the gateway cannot write its audit log, and no query is decided")


def test_only_a_refusal_before_anything_was_forwarded_names_the_check_clients_resubmit_on() -> None:
    before = _log_down(AuditUnavailable("the audit log is closed"), disclosing=False)
    assert before.check_codes == ["LOG_UNAVAILABLE"]
    # The node ran the query: sending it again is not the client's to decide.
    assert _log_down(AuditUnavailable("the audit log is closed"), disclosing=True).check_codes == []
