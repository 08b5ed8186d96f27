"""Which bundle decides a query: the agreement covering its pair of countries, or NO_AGREEMENT."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from comity.core.agreements import Agreement
from comity.core.bootstrap import init_federation
from comity.core.errors import ConfigError, PermissionDenied
from comity.core.federation import Federation
from comity.policy.agreements import ByAgreement, load_policies
from comity.policy.bundle import PolicyBundle, bundle_path
from comity.policy.bundle_store import BundleStore
from comity.policy.pairing import agreements_from_bundles, shipped_bundles

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def shipped() -> list[PolicyBundle]:
    return list(shipped_bundles())


def _federation(tmp_path: Path, agreements: list[Agreement]) -> Federation:
    layout = init_federation(
        tmp_path / "fed", gateway_port=1, countries={"US": 2, "CA": 3, "GB": 4}, agreements=agreements
    )
    return Federation.load(layout.federation_file)


def test_shipped_bundles_make_the_us_ca_agreement_and_nothing_for_a_third_country(
    shipped: list[PolicyBundle],
) -> None:
    (agreement,) = agreements_from_bundles(shipped, ["US", "CA", "GB"])
    digests = {b.name: b.digest for b in shipped}
    assert (agreement.id, agreement.parties) == ("us-ca-agreement", ("US", "CA"))
    assert agreement.bundle_digest == digests["us-ca-agreement"]
    assert dict(agreement.inbound or {}) == {"US": digests["us-inbound"], "CA": digests["ca-inbound"]}
    assert agreements_from_bundles(shipped, ["US", "GB"]) == []


def test_each_pair_is_decided_by_its_agreement_and_a_pair_without_one_is_refused(
    tmp_path: Path, shipped: list[PolicyBundle]
) -> None:
    fed = _federation(tmp_path, agreements_from_bundles(shipped, ["US", "CA"]))
    policies = load_policies(
        fed, store=tmp_path / "store", configured="", digest_of=lambda a: a.bundle_digest,
        build=lambda b: b, what="gateway",
    )  # fmt: skip
    chosen = policies.select("CA", "US", NOW)
    assert (chosen.agreement_id, chosen.policy.name) == ("us-ca-agreement", "us-ca-agreement")
    # Every bundle loaded is kept by digest, for replay.
    assert BundleStore(tmp_path / "store").find(chosen.policy.digest).digest == chosen.policy.digest
    with pytest.raises(PermissionDenied) as refused:
        policies.select("GB", "CA", NOW)
    (violation,) = refused.value.violations
    assert (violation.code, violation.check) == ("NO_AGREEMENT", "NO_AGREEMENT")
    assert refused.value.message.startswith("no agreement between GB and CA is in force on 2026-06-01")
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    # Before the agreement's first day, there is none either.
    with pytest.raises(PermissionDenied, match="no agreement between US and CA"):
        policies.select("US", "CA", datetime(2025, 12, 31, tzinfo=UTC))


def test_a_node_decides_under_its_own_countrys_inbound_bundle(
    tmp_path: Path, shipped: list[PolicyBundle]
) -> None:
    fed = _federation(tmp_path, agreements_from_bundles(shipped, ["US", "CA"]))
    ca = load_policies(
        fed, store=None, configured="", digest_of=lambda a: a.inbound_digest("CA"), build=lambda b: b,
        what="CA inbound",
    )  # fmt: skip
    assert ca.select("US", "CA", NOW).policy.name == "ca-inbound"
    gb = load_policies(
        fed, store=None, configured="", digest_of=lambda a: a.inbound_digest("GB"), build=lambda b: b,
        what="GB inbound",
    )  # fmt: skip
    assert gb.policies == {}
    with pytest.raises(PermissionDenied, match="no agreement between US and GB"):
        gb.select("US", "GB", NOW)


def test_a_bundle_that_cannot_be_found_stops_the_start(tmp_path: Path, shipped: list[PolicyBundle]) -> None:
    (agreement,) = agreements_from_bundles(shipped, ["US", "CA"])
    missing = dataclasses.replace(agreement, bundle_digest="sha256:" + "0" * 64)
    fed = _federation(tmp_path, [missing])
    with pytest.raises(
        ConfigError, match=r"agreements\[0\]: the gateway bundle of agreement 'us-ca-agreement'"
    ):
        load_policies(
            fed, store=None, configured="", digest_of=lambda a: a.bundle_digest, build=lambda b: b,
            what="gateway",
        )  # fmt: skip


def test_without_agreements_the_configured_bundle_decides_and_is_required(tmp_path: Path) -> None:
    layout = init_federation(tmp_path / "fed", gateway_port=1, countries={"US": 2, "CA": 3}, format=1)
    fed = Federation.load(layout.federation_file)
    with pytest.raises(ConfigError, match=r"policy\.bundle: the federation file lists no agreements"):
        load_policies(
            fed,
            store=None,
            configured="",
            digest_of=lambda a: a.bundle_digest,
            build=lambda b: b,
            what="gateway",
        )
    policies: ByAgreement[PolicyBundle] = load_policies(
        fed, store=None, configured=str(bundle_path("us-ca-agreement")), digest_of=lambda a: a.bundle_digest,
        build=lambda b: b, what="gateway",
    )  # fmt: skip
    chosen = policies.select("GB", "CA", NOW)
    assert chosen.agreement is None and chosen.agreement_id == "" and chosen.policy.name == "us-ca-agreement"


def test_a_new_version_builds_only_its_new_bundles_and_a_missing_one_fails_the_whole_set(
    tmp_path: Path, shipped: list[PolicyBundle]
) -> None:
    (agreement,) = agreements_from_bundles(shipped, ["US", "CA"])
    built: list[str] = []

    def build(bundle: PolicyBundle) -> object:
        built.append(bundle.name)
        return object()

    def policies(fed: Federation, previous: ByAgreement[object] | None = None) -> ByAgreement[object]:
        return load_policies(
            fed, store=tmp_path / "store", configured="", digest_of=lambda a: a.bundle_digest,
            build=build, what="gateway", previous=previous,
        )  # fmt: skip

    first = policies(_federation(tmp_path / "1", [agreement]))
    # Version 2 adds a US–GB agreement under the same gateway bundle: nothing is built again.
    inbound = dict(agreement.inbound or {})
    us_gb = dataclasses.replace(
        agreement, id="us-gb", parties=("US", "GB"), inbound={"US": inbound["US"], "GB": inbound["CA"]}
    )
    second = policies(_federation(tmp_path / "2", [agreement, us_gb]), previous=first)
    assert built == ["us-ca-agreement"]
    assert second.select("GB", "US", NOW).policy is first.select("CA", "US", NOW).policy
    assert second.select("US", "GB", NOW).agreement_id == "us-gb"
    # A version naming a bundle that cannot be found fails whole, and the set in use is untouched.
    unknown = dataclasses.replace(us_gb, bundle_digest="sha256:" + "0" * 64)
    with pytest.raises(ConfigError, match="us-gb"):
        policies(_federation(tmp_path / "3", [agreement, unknown]), previous=second)
    assert second.select("US", "GB", NOW).agreement_id == "us-gb"
