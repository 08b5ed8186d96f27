"""A query being admitted is checked under one federation version, even when a newer one arrives.

Admission runs in the node's worker threads while the federation watch swaps versions on the
event loop: a query that began under version 1 finishes under it, and the next one is checked
under version 2 (here, one that revokes the investigator who signed it).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from comity.core.dsse import PAYLOAD_QUERY, sign_envelope
from comity.core.errors import Unauthenticated
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.nodes.admission import Admission
from comity.sdk.demo.setup import build_demo_federation
from comity.v1 import comity_pb2 as pb


def test_a_query_in_progress_keeps_its_version_and_the_next_one_gets_the_new(tmp_path: Path) -> None:
    fed = build_demo_federation(tmp_path, people=3, seed=5)
    file = fed.layout.federation_file
    v1 = Federation.load(file)
    agency = fed.layout.agencies["ca.rcmp"]
    revoked = re.sub(
        r'\[\[members.investigators\]\]\nid = "ca.rcmp/[^"]*"\nkey = "[^"]*"\n', "", file.read_text()
    )
    v2 = Federation.from_toml_text(revoked, base=file.parent)
    key = SigningKey.load(agency.investigator_key, key_id=agency.investigator)
    query = pb.Query(
        query_id="q-1", investigator=agency.investigator, requesting_agency="ca.rcmp", target_node="us-node"
    )
    envelope = sign_envelope(PAYLOAD_QUERY, query.SerializeToString(), key)
    unused = cast(Any, None)  # parts of admission these steps do not touch
    admission = Admission(
        node=v1.node("us-node"),
        federation=v1,
        policies=unused,
        witness=unused,
        gateway_log=unused,
        hit_references=unused,
        clock=unused,
    )
    began, swapped = threading.Event(), threading.Event()
    outcome: list[str] = []

    def in_progress() -> None:
        with admission.one_version():
            admission.verify_query(envelope)  # version 1 registers the investigator
            began.set()
            swapped.wait(10)
            verified, _ = admission.verify_query(envelope)  # still version 1 for this query
            outcome.append(verified.query_id)

    worker = threading.Thread(target=in_progress)
    worker.start()
    assert began.wait(10)
    admission.use_federation(v2)
    swapped.set()
    worker.join(10)
    assert outcome == ["q-1"]
    with admission.one_version(), pytest.raises(Unauthenticated):
        admission.verify_query(envelope)  # the next query: version 2 no longer lists the signer
