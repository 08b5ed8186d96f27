"""A third country joins a running two-country federation from the CLI alone (real processes).

``comity init`` writes a US–Canada federation whose ``[signing]`` role is both agencies'
federation keys; its gateway and nodes run as ``comity ... serve`` processes. ``comity
federation add-member`` writes the UK's keys, certificates, JWKS and node config and version 2
with its entry and the US–GB agreement; both current signers sign it (``comity federation
sign``), ``comity federation verify`` trusts it against version 1, and it replaces version 1.
The gateway and the US and Canadian nodes take it while they run (no restart: the gateway
routes to the new node and asks it to witness, everyone decides under the new agreement), the
UK node starts, and then: the UK queries the US under the US–GB agreement, the US queries the
new node, UK → Canada is refused ``NO_AGREEMENT`` and logged, and one checkpoint is cosigned by
all three nodes' witnesses.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from comity.audit.events import DecisionEvent, NodeDecisionEvent, RefusedEvent, decode_event
from comity.core import errors
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.core.orders import sign_order
from comity.core.target import target_facts
from comity.nodes.schema import SelectorType
from comity.nodes.synthetic import Person, generate
from comity.policy.bundle import PolicyBundle
from comity.sdk.demo.setup import free_ports
from comity.sdk.profile import load_profile
from comity.sdk.query import QuerySpec, Selector, read_order_file
from comity.sdk.result import Result
from comity.v1 import comity_pb2 as pb
from tests.e2e.served import COMITY, serving, wait_for
from tests.e2e.three_countries import third_country_bundles

NOW = datetime.now(UTC)


def _cli(*args: object, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [COMITY, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, f"comity {' '.join(map(str, args))}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _says(log: Path, words: str) -> bool:
    return words in log.read_text(errors="replace")


@dataclass
class Joined:
    directory: Path
    ports: dict[str, int]
    people: dict[str, list[Person]]  # well-known subjects by node id
    bundles: dict[str, PolicyBundle]
    said: dict[str, str]  # what each step printed

    @property
    def federation(self) -> Federation:
        return Federation.load(self.directory / "federation.toml")


def _config(d: Path, name: str, text: str) -> Path:
    path = d / "configs" / f"{name}.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def _node_config(d: Path, node: str, cc: str, port: int) -> Path:
    """A founding member's node config, as its operator writes it (``comity init`` writes none)."""
    return _config(
        d,
        node,
        f'[node]\nid = "{node}"\nlisten = "127.0.0.1:{port}"\nfederation = "../federation.toml"\n'
        f'[store]\nurl = "sqlite:///../data/{node}.db"\n'
        f'[keys]\nresponse_key = "../keys/{node}/response.key"\nwitness_key = "../keys/{node}/witness.key"\n'
        f'[tls]\ncert = "../pki/{cc}/{node}.crt"\nkey = "../pki/{cc}/{node}.key"\n'
        f'[policy]\nstore = "../bundles"\n[witness]\nstate = "../data/{node}-witness.db"\n',
    )


def _gateway_config(d: Path, port: int) -> Path:
    return _config(
        d,
        "gateway",
        f'[gateway]\nlisten = "127.0.0.1:{port}"\nfederation = "../federation.toml"\n'
        'audience = "comity-gateway"\n'
        '[tls]\ncert = "../pki/gateway/server.crt"\nkey = "../pki/gateway/server.key"\n'
        'client_cert = "../pki/gateway/client.crt"\nclient_key = "../pki/gateway/client.key"\n'
        '[keys]\ndecision_key = "../keys/gateway/decision.key"\nlog_key = "../keys/gateway/log.key"\n'
        'justification_key = "../keys/gateway/justification.key"\n'
        '[audit]\nurl = "sqlite:///../data/audit.db"\nbatch_interval_ms = 2\n'
        '[replay]\nurl = "sqlite:///../data/replay.db"\n[policy]\nstore = "../bundles"\n'
        "[witnessing]\ninterval_seconds = 0.2\n",
    )


def _records(d: Path, node: str, cc: str, other: str, config: Path) -> list[Person]:
    data = generate(cc, 20, 7, other=other)
    jsonl = d / "data" / f"{node}.jsonl"
    jsonl.parent.mkdir(exist_ok=True)
    data.write_jsonl(jsonl)
    _cli("node", "load", "--config", config, jsonl)
    return data.well_known


def _profile(d: Path, agency: str, investigator: str, issuer: str, gateway_port: int) -> Path:
    token = d / "tokens" / f"{agency}.jwt"
    token.parent.mkdir(exist_ok=True)
    fed = d / "federation.toml"
    key = d / "keys" / agency / "issuer.key"
    _cli("token", "mint", "--federation", fed, "--issuer", issuer, "--key", key, "--subject", investigator,
         "--out", token)  # fmt: skip
    profile = d / "profiles" / f"{agency}.toml"
    profile.parent.mkdir(exist_ok=True)
    profile.write_text(
        f'[investigator]\nid = "{investigator}"\nagency = "{agency}"\n'
        f'key = "../keys/{agency}/investigator.key"\ntoken_file = "../tokens/{agency}.jwt"\n'
        f'[gateway]\naddress = "127.0.0.1:{gateway_port}"\nca = "../pki/gateway/ca.crt"\n'
        'federation = "../federation.toml"\ntimeout_seconds = 30\n'
    )
    return profile


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Joined]:
    root = tmp_path_factory.mktemp("join")
    d = root / "fed"
    bundles = third_country_bundles(root / "bundles")
    gw, us, ca, gb = free_ports(4)
    said: dict[str, str] = {}
    said["init"] = _cli("init", d, "--gateway-port", gw, "--node", f"US:{us}", "--node", f"CA:{ca}")
    gateway = _gateway_config(d, gw)
    configs = {
        "us-node": _node_config(d, "us-node", "us", us),
        "ca-node": _node_config(d, "ca-node", "ca", ca),
    }
    people = {
        "us-node": _records(d, "us-node", "US", "CA", configs["us-node"]),
        "ca-node": _records(d, "ca-node", "CA", "US", configs["ca-node"]),
    }
    with ExitStack() as stack:
        stack.enter_context(serving("gateway", gateway, gw))
        for config, port in ((configs["us-node"], us), (configs["ca-node"], ca)):
            stack.enter_context(serving("node", config, port))

        # The UK joins: its files, version 2, signed by both current signers, trusted, installed.
        said["add"] = _cli(
            "federation", "add-member", d / "federation.toml", "--node", f"GB:{gb}",
            "--bundles", root / "bundles", "--agreement", "us-gb-agreement",
        )  # fmt: skip
        v2 = d / "federation.v2.toml"
        for agency in ("us.fbi", "ca.rcmp"):
            said[f"sign {agency}"] = _cli(
                "federation", "sign", v2, "--key", d / "keys" / agency / "federation.key"
            )
        said["verify"] = _cli("federation", "verify", v2, "--trusted", d / "federation.toml")
        os.replace(d / "federation.v2.toml.dsse", d / "federation.toml.dsse")
        os.replace(v2, d / "federation.toml")
        # The running servers take version 2 through its signatures (what can change while running).
        for config in (gateway, *configs.values()):
            log = config.with_suffix(".log")
            wait_for(partial(_says, log, "now version 2"), f"{log.name} on version 2")

        # Nothing restarts: the gateway routes to the new node and decides under the new
        # agreement, the US and Canadian nodes follow it as they run; the new node starts.
        gb_config = d / "configs" / "gb-node.toml"
        people["gb-node"] = _records(d, "gb-node", "GB", "US", gb_config)
        stack.enter_context(serving("node", gb_config, gb))
        yield Joined(d, {"gateway": gw, "us-node": us, "ca-node": ca, "gb-node": gb}, people, bundles, said)


def _ts(when: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


def _query(
    j: Joined, agency: str, node: str, person: Person, order_id: str, offence: str
) -> Result | errors.ComityError:
    """``agency`` fetches ``person``'s subscriber records from ``node`` under a judge's order."""
    fed = j.federation
    member = next(m for m in fed.members if m.agency == agency)
    authority = member.authorities[0]
    email = person.selectors[SelectorType.EMAIL]
    order = pb.LegalOrder(
        order_id=order_id,
        issuing_authority=authority.id,
        issuing_country=member.country,
        offence_code=offence,
        authorised_by="the court's judge",
        authorisation_type="judicial",
        selectors=[pb.Selector(type=int(SelectorType.EMAIL), value=email)],  # type: ignore[arg-type]
        categories=["SUBSCRIBER"],
        valid_from=_ts(NOW - timedelta(days=1)),
        valid_until=_ts(NOW + timedelta(days=30)),
        max_records=200,
        target=target_facts(
            nationalities=(person.nationality,),
            residences=(person.residence,),
            locations=(person.residence,),
            kind="natural-person",
            not_for_third_government=True,
        ),
    )
    key = SigningKey.load(j.directory / "keys" / agency / "authority.key", key_id=authority.id)
    path = j.directory / "orders" / f"{order_id}.order"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(sign_order(order, key).SerializeToString())
    investigator = member.investigators[0].id
    profile = _profile(j.directory, agency, investigator, member.issuers[0].issuer, j.ports["gateway"])
    spec = QuerySpec(
        target_node=node,
        selectors=[Selector("EMAIL", email)],
        categories=["subscriber"],
        kind="fetch",
        case_reference=f"{order_id}-CASE",
        facts=(
            "Two pistols seized on 2026-08-30 were bought through an online broker whose invoices were "
            f"sent to this e-mail address ({order_id})."
        ),
        link_to_offence="The address received the broker's invoices for the seized pistols.",
        legal_order=read_order_file(path),
        time_range=(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, tzinfo=UTC)),
    )
    with load_profile(profile).client() as client:
        try:
            return client.query(spec)
        except errors.ComityError as err:
            return err


def _person(j: Joined, node: str, nationality: str) -> Person:
    return next(p for p in j.people[node] if p.nationality == nationality and p.residence == nationality)


def test_each_step_said_what_it_did(joined: Joined) -> None:
    said = {k: " ".join(v.split()) for k, v in joined.said.items()}
    assert "next version signed by 2 of the 2" in said["init"]
    assert "wrote version 2" in said["add"] and "agreement us-gb-agreement: US – GB" in said["add"]
    assert "signed by us.fbi/federation, ca.rcmp/federation" in said["sign ca.rcmp"]
    assert "trusted: federation 'federation' version 2" in said["verify"]
    fed = joined.federation
    assert [m.country for m in fed.members] == ["US", "CA", "GB"]
    assert [a.id for a in fed.agreements] == ["us-ca-agreement", "us-gb-agreement"]


def test_the_new_member_queries_the_us_under_its_own_agreement(joined: Joined) -> None:
    result = _query(
        joined, "gb.nca", "us-node", _person(joined, "us-node", "CA"), "GB-WMC-2026-0201", "CC 99"
    )
    assert not isinstance(result, errors.ComityError), result
    assert result.records
    decision, node_decision, _ = (decode_event(e.entry) for e in result.receipt.entries)
    assert isinstance(decision, DecisionEvent) and decision.decision == "ALLOW"
    assert (decision.agreement, decision.bundle_digest) == (
        "us-gb-agreement",
        joined.bundles["us-gb-agreement"].digest,
    )
    assert isinstance(node_decision, NodeDecisionEvent)
    assert node_decision.bundle_digest == joined.bundles["us-inbound-gb"].digest


def test_the_us_queries_the_new_node(joined: Joined) -> None:
    target = _person(joined, "gb-node", "US")
    result = _query(joined, "us.fbi", "gb-node", target, "US-SDNY-2026-0201", "18 USC 1030(a)(7)")
    assert not isinstance(result, errors.ComityError), result
    assert result.node_id == "gb-node" and result.records
    _, node_decision, _ = (decode_event(e.entry) for e in result.receipt.entries)
    assert isinstance(node_decision, NodeDecisionEvent)
    assert node_decision.bundle_digest == joined.bundles["gb-inbound"].digest


def test_the_new_member_and_canada_have_no_agreement_refused_and_logged(joined: Joined) -> None:
    err = _query(joined, "gb.nca", "ca-node", _person(joined, "ca-node", "US"), "GB-WMC-2026-0202", "CC 99")
    assert isinstance(err, errors.PermissionDenied), err
    assert err.rule_codes == ["NO_AGREEMENT"]
    assert "no agreement between GB and CA is in force" in err.message
    assert err.receipt is not None
    (refused,) = (decode_event(e.entry) for e in err.receipt.entries)
    assert isinstance(refused, RefusedEvent) and refused.agency == "gb.nca"
    assert refused.checks == (("NO_AGREEMENT", "NO_AGREEMENT"),)


def test_three_nodes_cosign_one_checkpoint_of_the_log(joined: Joined) -> None:
    """After the queries: the log verifies, and its quorum checkpoint is cosigned by every country's node."""
    verify = ["audit", "verify", "--db", joined.directory / "data" / "audit.db"]
    verify += [
        "--federation",
        joined.directory / "federation.toml",
        "--state",
        joined.directory / "officer.state",
    ]
    found: list[str] = []

    def cosigned_by_all() -> bool:
        out = " ".join(_cli(*verify).split())
        found[:] = [out]
        names = re.search(r"witness quorum on checkpoint \d+: cosigned by ((?:[\w-]+, )*[\w-]+)", out)
        return names is not None and set(names[1].split(", ")) == {"us-node", "ca-node", "gb-node"}

    try:
        wait_for(cosigned_by_all, "a checkpoint cosigned by all three nodes")
    except AssertionError as err:
        raise AssertionError(f"{err}; comity audit verify said: {found}") from None
    assert found[0].startswith("✓ verified")
