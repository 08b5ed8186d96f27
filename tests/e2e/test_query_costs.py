"""What one query costs, counted: Ed25519 signs and verifies by component, durable commits by database,
and worker-thread hops by caller.

The demo federation runs in this process with real TLS, signatures and SQLite; queries go one at
a time through the SDK (:mod:`bench.costs`). The counts are exact: a change that adds a signature,
a verification or a commit to the query path fails here and must update the table (and say why
in docs/performance.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import comity.core.queries as queries_module
from bench.costs import QueryCosts, count_costs
from bench.federation import prepare_federation
from comity.sdk.demo.setup import DemoFederation

# (component, operation, the nearest Comity caller that is not a signing wrapper) → per query
ED25519 = {
    ("client", "sign", "comity.sdk.query.sign_query"): 1,
    ("client", "verify", "comity.audit.quorum.open_log_checkpoint"): 1,  # the receipt's checkpoint
    ("client", "verify", "comity.audit.statement._signed_payload"): 3,  # node statement, decisions
    ("gateway", "sign", "comity.audit.log._sign"): 2,  # a checkpoint per batch: decision; disclosure
    ("gateway", "sign", "comity.gateway.pipeline.gateway_decision"): 1,
    ("gateway", "verify", "comity.audit.quorum.verify"): 1,  # the witness's cosignature
    ("gateway", "verify", "comity.core.queries.check_query_signature"): 1,
    ("gateway", "verify", "comity.gateway.node_decisions.verify_node_decision"): 2,  # decision, statement
    ("node", "sign", "comity.audit.witness._witness_opened"): 1,  # the cosignature
    ("node", "sign", "comity.nodes.decisions.sign"): 1,  # the node's signed allowance
    ("node", "sign", "comity.nodes.service._summary"): 1,  # the node statement
    ("node", "verify", "comity.audit.quorum.open_log_checkpoint"): 1,  # the checkpoint, once
    ("node", "verify", "comity.nodes.admission.verify_decision"): 1,
    ("node", "verify", "comity.nodes.admission.verify_query"): 1,
}
COMMITS = {
    "audit.db": 3,  # justification signature; decision with quota counts; disclosure with node decision
    "replay.db": 1,
    "us-node-witness.db": 1,
    "us-node.db": 2,  # the node's decision in its outbox; the sealed openings of its facts
}

HOPS = {
    ("gateway", "comity.audit.log._in_writer"): 2,  # the log's writer thread, one batch each
    ("gateway", "comity.core.replay.record_async"): 1,
    ("gateway", "comity.gateway.reuse.claim_async"): 1,
    ("node", "comity.nodes.service._run"): 1,  # admission, look-up and statement in one call
}


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> DemoFederation:
    return prepare_federation(Path(tmp_path_factory.mktemp("costs")) / "federation", people=40)


def test_ed25519_operations_and_commits_per_query(federation: DemoFederation) -> None:
    costs = count_costs(federation, queries=3)
    assert costs.ed25519 == ED25519
    assert costs.commits == COMMITS
    assert (costs.operations("gateway", "sign"), costs.operations("gateway", "verify")) == (3, 4)
    assert (costs.operations("node", "sign"), costs.operations("node", "verify")) == (3, 3)
    assert costs.commits_per_query == 7
    assert costs.hops == HOPS


def test_an_added_verification_shows_up(federation: DemoFederation, monkeypatch: pytest.MonkeyPatch) -> None:
    checked = queries_module.check_query_signature

    def twice(*args: object, **kwargs: object) -> object:
        checked(*args, **kwargs)  # type: ignore[arg-type]
        return checked(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(queries_module, "check_query_signature", twice)
    costs: QueryCosts = count_costs(federation, queries=2)
    assert costs.ed25519[("gateway", "verify", "comity.core.queries.check_query_signature")] == 2
    assert costs.operations("gateway", "verify") == 5
    assert costs.operations("node", "verify") == 3
