"""The federation file's format 2: key histories, independent witnesses, the witness policy."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from comity.core.bootstrap import FederationLayout, init_federation
from comity.core.errors import ConfigError, NotFound
from comity.core.federation import Federation
from comity.core.keys import SigningKey
from comity.core.witnesspolicy import WitnessGroup

Format2 = Callable[..., str]  # the conftest's format2 fixture

HEADER = "format = 2\nversion = 1\nexpires = 2030-01-01T00:00:00Z\n"  # what the format2 fixture adds


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    return init_federation(
        tmp_path_factory.mktemp("fed"),
        gateway_port=7443,
        countries={"US": 7101, "CA": 7102},
        format=1,
        name="us-ca",
    )


def pub() -> str:
    return SigningKey.generate("k").verifying_key.to_text()


@pytest.fixture(scope="module")
def v1(layout: FederationLayout) -> str:
    return layout.federation_file.read_text()


@pytest.fixture(scope="module")
def v2(v1: str, format2: Format2) -> str:
    return format2(v1)


def load(text: str, layout: FederationLayout) -> Federation:
    return Federation.from_toml_text(text, base=layout.directory, source="fed.toml")


def test_a_format_1_file_maps_to_one_key_histories_and_the_default_policy(
    layout: FederationLayout, v1: str
) -> None:
    fed = load(v1, layout)
    assert (fed.format, fed.version, fed.expires, fed.signing) == (1, None, None, None)
    node = fed.node("us-node")
    assert node.witness_keys.all() == (node.witness_key,)
    assert node.witness_keys.at(datetime(2000, 1, 1, tzinfo=UTC)) == (node.witness_key,)
    assert node.response_keys.current == node.response_key
    assert fed.gateway.decision_keys.current == fed.gateway.decision_key
    assert fed.gateway.log.keys.for_size(0) == (fed.gateway.log.key,)
    assert fed.witness_policy.groups == (
        WitnessGroup("US", "US", ("us-node",), 1),
        WitnessGroup("CA", "CA", ("ca-node",), 1),
    )
    assert fed.witness_policy.is_quorum(["us-node", "ca-node"])
    assert not fed.witness_policy.is_quorum(["us-node"])
    assert [w.id for w in fed.witness_identities()] == ["us-node", "ca-node"]
    ca = fed.witness_identity("ca-node")
    assert (ca.name, ca.country, ca.endpoint, ca.keys) == ("ca-node", "CA", "127.0.0.1:7102", node_keys(fed))
    with pytest.raises(NotFound, match="'nobody'"):
        fed.witness_identity("nobody")


def node_keys(fed: Federation) -> object:
    return fed.node("ca-node").witness_keys


def test_the_same_keys_in_format_2_load_to_the_same_federation(
    layout: FederationLayout, v1: str, v2: str
) -> None:
    old, new = load(v1, layout), load(v2, layout)
    assert (new.format, new.version, new.expires) == (2, 1, datetime(2030, 1, 1, tzinfo=UTC))
    assert new.members[0].investigators == old.members[0].investigators
    for a, b in zip(old.nodes(), new.nodes(), strict=True):
        assert (a.response_key, a.witness_key) == (b.response_key, b.witness_key)
    assert new.gateway.decision_key == old.gateway.decision_key
    assert new.gateway.log.key == old.gateway.log.key
    assert new.witness_policy == old.witness_policy
    assert new.witness_keys() == old.witness_keys()


def rotate_witness_key(text: str, until: str, new_from: str) -> tuple[str, str]:
    """Give us-node's witness key an end and add a new key from ``new_from``."""
    new = pub()
    first = text.index("[[members.nodes.witness_keys]]")
    end = text.index("\n\n", first) if "\n\n" in text[first:] else len(text)
    block = text[first:end]
    rotated = block + f"\nvalid_until = {until}\n\n[[members.nodes.witness_keys]]\nkey = {new!r}\n"
    rotated += f"valid_from = {new_from}\n"
    return text[:first] + rotated.replace("'", '"') + text[end:], new


def test_rotation_by_overlap_keeps_both_keys_and_the_new_one_is_current(
    layout: FederationLayout, v2: str
) -> None:
    text, new = rotate_witness_key(v2, "2026-09-01T00:00:00Z", "2026-08-25T00:00:00Z")
    node = load(text, layout).node("us-node")
    assert node.witness_key.to_text() == new
    assert node.witness_key.key_id == "us-node"
    during = node.witness_keys.at(datetime(2026, 8, 28, tzinfo=UTC))
    assert [k.to_text() for k in during][1] == new and len(during) == 2
    assert node.witness_keys.at(datetime(2026, 9, 2, tzinfo=UTC)) == (node.witness_key,)


@pytest.mark.parametrize(
    ("until", "new_from", "field", "why"),
    [
        ("2026-08-01T00:00:00Z", "2026-08-25T00:00:00Z", "witness_keys[1].valid_from", "gap"),
        ("2025-01-01T00:00:00Z", "2026-08-25T00:00:00Z", "witness_keys[0].valid_until", "later than"),
        ("2026-09-01T00:00:00", "2026-08-25T00:00:00Z", "witness_keys[0].valid_until", "with an offset"),
        ("2026-09-01", "2026-08-25T00:00:00Z", "witness_keys[0].valid_until", "with an offset"),
    ],
)
def test_a_bad_rotation_is_refused_naming_the_field(
    layout: FederationLayout, v2: str, until: str, new_from: str, field: str, why: str
) -> None:
    text, _ = rotate_witness_key(v2, until, new_from)
    with pytest.raises(ConfigError, match=why) as info:
        load(text, layout)
    assert info.value.field == f"members[0].nodes[0].{field}"


def test_two_current_keys_and_no_current_key_are_refused(layout: FederationLayout, v2: str) -> None:
    two = v2.replace(
        "[[gateway.decision_keys]]\n",
        f'[[gateway.decision_keys]]\nkey = "{pub()}"\n\n[[gateway.decision_keys]]\n',
    )
    with pytest.raises(ConfigError, match="exactly one key is current") as info:
        load(two, layout)
    assert info.value.field == "gateway.decision_keys[1]"
    none = v2.replace("[[gateway.log.keys]]\n", "[[gateway.log.keys]]\nuntil_size = 10\n")
    with pytest.raises(ConfigError, match="no key is current") as info:
        load(none, layout)
    assert info.value.field == "gateway.log.keys[0]"


def test_log_keys_rotate_by_tree_size(layout: FederationLayout, v2: str) -> None:
    new = pub()
    text = v2.replace(
        "[[gateway.log.keys]]\n",
        f'[[gateway.log.keys]]\nfrom_size = 1200\nkey = "{new}"\n\n[[gateway.log.keys]]\nuntil_size = 1200\n',
    )
    log = load(text, layout).gateway.log
    assert log.key.to_text() == new
    assert log.key.key_id == log.origin
    assert [k.to_text() for k in log.keys.for_size(1200)] == [new]
    assert log.keys.for_size(1199) != log.keys.for_size(1200)
    gap = text.replace("from_size = 1200", "from_size = 1300")
    with pytest.raises(ConfigError, match="sizes 1200 to 1299") as info:
        load(gap, layout)
    assert info.value.field == "gateway.log.keys[0].from_size"


@pytest.mark.parametrize(
    ("mutate", "field", "why"),
    [
        (lambda t: t.replace("format = 2\n", ""), "version", "needs format = 2"),
        (lambda t: t.replace("format = 2", "format = 3"), "format", "must be 1 or 2"),
        (lambda t: t.replace("version = 1\n", ""), "version", "missing"),
        (lambda t: t.replace("version = 1\n", "version = 0\n"), "version", "at least 1"),
        (lambda t: t.replace("expires = 2030-01-01T00:00:00Z\n", ""), "expires", "missing"),
        (lambda t: t.replace("expires = 2030-01-01T00:00:00Z", "expires = 2030-01-01"), "expires", "offset"),
        (
            lambda t: t.replace("[gateway]\n", '[gateway]\ndecision_key = "x"\n'),
            "gateway.decision_key",
            "use [[gateway.decision_keys]]",
        ),
        (
            lambda t: t + '\n[[members.nodes.witness_keys]]\nkey = "x"\n',
            "members[1].nodes[0].witness_keys[1].key",
            "ed25519:",
        ),
        (
            lambda t: t.replace("[[gateway.log.keys]]\n", "[[gateway.log.keys]]\nfrom = 1\n"),
            "gateway.log.keys[0].from",
            "unknown",
        ),
    ],
    ids=[
        "no-format",
        "format-3",
        "no-version",
        "version-0",
        "no-expiry",
        "expiry-date",
        "single-key-in-2",
        "bad-key",
        "misspelt",
    ],
)
def test_a_bad_format_2_file_names_the_field(
    layout: FederationLayout, v2: str, mutate: object, field: str, why: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(why)) as info:
        load(mutate(v2), layout)  # type: ignore[operator]
    assert info.value.field == field, info.value.message


def test_format_1_refuses_histories_and_format_2_refuses_single_keys(
    layout: FederationLayout, v1: str, v2: str
) -> None:
    with pytest.raises(ConfigError, match="needs format = 2") as info:
        load(v2.replace(HEADER, ""), layout)
    assert info.value.field == "members[0].nodes[0].response_keys"
    with pytest.raises(ConfigError, match=r"use \[\[members\[0\]\.nodes\[0\]\.response_keys\]\]") as info:
        load(
            v2.replace(
                "[[members.nodes.response_keys]]\n",
                'response_key = "x"\n[[members.nodes.response_keys]]\n',
                1,
            ),
            layout,
        )
    assert info.value.field == "members[0].nodes[0].response_key"
    with pytest.raises(ConfigError, match="needs format = 2") as info:
        load(v1 + "\n[witness_policy]\n", layout)
    assert info.value.field == "witness_policy"


def test_a_witness_key_may_never_have_been_a_response_key(layout: FederationLayout, v2: str) -> None:
    response = re.search(r'\[\[members.nodes.response_keys\]\]\nkey = (".*")', v2)
    assert response
    text, _ = rotate_witness_key(v2, "2026-09-01T00:00:00Z", "2026-08-25T00:00:00Z")
    text = text.replace(
        text.split("[[members.nodes.witness_keys]]\nkey = ")[2].split("\n")[0], response.group(1)
    )
    with pytest.raises(ConfigError, match="one key, one purpose") as info:
        load(text, layout)
    assert info.value.field == "members[0].nodes[0].witness_keys[1].key"


# ---------------------------------------------------------------------- witnesses and the policy

NGO = "witness.example-ngo"


def witness(witness_id: str = NGO, port: int = 7301) -> str:
    return (
        f'\n[[witnesses]]\nid = "{witness_id}"\nname = "Example Transparency Foundation"\n'
        f'endpoint = "127.0.0.1:{port}"\ntls_cert_sha256 = "{"ab" * 32}"\n'
        f'[[witnesses.keys]]\nkey = "{pub()}"\nvalid_from = 2026-01-01T00:00:00Z\n'
    )


def policy(*groups: str, max_delay: str = "") -> str:
    delay = f'max_delay = "{max_delay}"\n' if max_delay else ""
    return "\n[witness_policy]\n" + delay + "".join(f"[[witness_policy.groups]]\n{g}\n" for g in groups)


INDEPENDENT = f'name = "independent"\nwitnesses = ["{NGO}"]'
FULL = policy('country = "US"', 'country = "CA"\nthreshold = 1', INDEPENDENT, max_delay="45s")


def test_independent_witnesses_and_groups_form_the_quorum(layout: FederationLayout, v2: str) -> None:
    fed = load(v2 + witness() + FULL, layout)
    ngo = fed.witness_identity(NGO)
    assert (ngo.name, ngo.country, ngo.endpoint) == (NGO, None, "127.0.0.1:7301")
    assert ngo.display_name == "Example Transparency Foundation"
    assert ngo.tls_cert_pins == ("ab" * 32,)
    assert ngo.keys.current.key_id == NGO
    assert [w.id for w in fed.witness_identities()] == ["us-node", "ca-node", NGO]
    p = fed.witness_policy
    assert p.max_delay == timedelta(seconds=45)
    assert [(g.name, g.country, g.witnesses, g.threshold) for g in p.groups] == [
        ("US", "US", ("us-node",), 1),
        ("CA", "CA", ("ca-node",), 1),
        ("independent", None, (NGO,), 1),
    ]
    assert p.is_quorum(["us-node", "ca-node", NGO])
    assert p.missing(["us-node", "ca-node"]) == {"independent": 1}
    assert p.group_of_country("US").witnesses == ("us-node",)
    # The node-only view stays what it was.
    assert set(fed.witness_keys()) == {"us-node", "ca-node"}


def test_without_a_policy_every_member_country_needs_all_its_witnesses(
    layout: FederationLayout, v2: str
) -> None:
    p = load(v2, layout).witness_policy
    assert [(g.name, g.threshold) for g in p.groups] == [("US", 1), ("CA", 1)]
    assert p.max_delay == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("extra", "field", "why"),
    [
        (
            witness("w2", 7302)
            + witness("w3", 7303)
            + witness("w4", 7304)
            + policy(
                'country = "US"',
                'country = "CA"',
                f'name = "independent"\nwitnesses = ["{NGO}", "w2", "w3", "w4"]\nthreshold = 2',
            ),
            "witness_policy.groups[2].threshold",
            "group 'independent': threshold 2 of 4 witnesses lets two disjoint sets",
        ),
        (
            policy('country = "US"', INDEPENDENT),
            "witness_policy.groups",
            "member country CA has no witness group",
        ),
        (
            policy('country = "US"', 'country = "CA"'),
            "witnesses[0].id",
            f"witness {NGO!r} belongs to no group",
        ),
        (
            policy('country = "US"', 'country = "CA"', 'name = "x"\nwitnesses = ["nobody"]'),
            "witness_policy.groups[2].witnesses[0]",
            "'nobody' is not a witness",
        ),
        (
            policy('country = "US"', 'country = "CA"', INDEPENDENT, 'name = "x"\nwitnesses = ["us-node"]'),
            "witness_policy.groups[3].witnesses",
            "already in group 'US'",
        ),
        (
            policy('country = "US"', 'country = "CA"', 'country = "FR"', INDEPENDENT),
            "witness_policy.groups[2].country",
            "FR is not a member country",
        ),
        (
            policy('country = "US"\nname = "us"', 'country = "CA"', INDEPENDENT),
            "witness_policy.groups[0].country",
            "exactly one of country",
        ),
        (
            policy('country = "US"\nwitnesses = ["us-node"]', 'country = "CA"', INDEPENDENT),
            "witness_policy.groups[0].witnesses",
            "list none",
        ),
        (
            policy('country = "US"\nthreshold = 2', 'country = "CA"', INDEPENDENT),
            "witness_policy.groups[0].threshold",
            "between 1 and its 1",
        ),
        (
            policy('country = "US"', 'country = "US"', 'country = "CA"', INDEPENDENT),
            "witness_policy.groups[1]",
            "already defined",
        ),
        (
            policy('country = "US"', 'country = "CA"', INDEPENDENT, max_delay="soon"),
            "witness_policy.max_delay",
            "not a duration",
        ),
        (
            policy('country = "US"', 'country = "CA"', INDEPENDENT, max_delay="0s"),
            "witness_policy.max_delay",
            "longer than zero",
        ),
        (
            policy('country = "US"', 'country = "CA"', INDEPENDENT) + witness(),
            "witnesses[1].id",
            "already the id of another witness",
        ),
    ],
    ids=[
        "half",
        "country-without-group",
        "ungrouped-witness",
        "unknown-witness",
        "two-groups",
        "not-a-member",
        "country-and-name",
        "country-lists-witnesses",
        "threshold-above-n",
        "same-group-twice",
        "bad-delay",
        "zero-delay",
        "duplicate-witness",
    ],
)
def test_a_bad_witness_policy_is_refused_naming_the_field(
    layout: FederationLayout, v2: str, extra: str, field: str, why: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(why)) as info:
        load(v2 + witness() + extra, layout)
    assert info.value.field == field, info.value.message


def test_a_witness_may_not_take_a_node_id_and_needs_a_key_history(layout: FederationLayout, v2: str) -> None:
    with pytest.raises(ConfigError, match="already the id of a node") as info:
        load(v2 + witness("ca-node"), layout)
    assert info.value.field == "witnesses[0].id"
    no_keys = witness().split("[[witnesses.keys]]")[0]
    with pytest.raises(ConfigError, match="missing") as info:
        load(v2 + no_keys + FULL, layout)
    assert info.value.field == "witnesses[0].keys"


def test_a_node_whose_country_is_not_a_member_country_must_still_be_witnessed(
    layout: FederationLayout, v1: str, v2: str
) -> None:
    node = re.search(
        r"\n\[\[members.nodes\]\]\nid = \"ca-node\"\n(endpoint.*\ntls_cert.*\ntls_cert_sha256.*\n)", v2
    )
    assert node
    head = f'\n[[members.nodes]]\nid = "fr-node"\ncountry = "FR"\n{node.group(1)}'
    response, witness_key = pub(), pub()
    fr_node = (
        f'{head}[[members.nodes.response_keys]]\nkey = "{response}"\n'
        f'[[members.nodes.witness_keys]]\nkey = "{witness_key}"\n'
    )
    # Format 1 groups witnesses by their node's country; format 2 by member country, so FR has none.
    fr_node_v1 = f'{head}response_key = "{response}"\nwitness_key = "{witness_key}"\n'
    assert load(v1 + fr_node_v1, layout).witness_policy.group_of_country("FR").witnesses == ("fr-node",)
    for extra in ("", policy('country = "US"', 'country = "CA"')):
        with pytest.raises(ConfigError, match=re.escape("'fr-node' (FR) belongs to no group")) as info:
            load(v2 + fr_node + extra, layout)
        assert info.value.field == "members[1].nodes[1].country"


def test_the_example_of_the_federation_guide_loads(tmp_path: Path) -> None:
    """docs/federation.md's example, placeholders filled, with the CA member its policy and agreement name."""
    doc = (Path(__file__).resolve().parents[3] / "docs" / "federation.md").read_text()
    found = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert found
    example = re.sub(r'"ed25519:<base64>"', lambda _: f'"{pub()}"', found.group(1))
    example = example.replace('"sha256:<hex>"', f'"sha256:{"d" * 64}"').replace('"<hex>"', f'"{"e" * 64}"')
    ca = (
        '\n[[members]]\nagency = "ca.rcmp"\ncountry = "CA"\n[[members.nodes]]\nid = "ca-node"\n'
        f'endpoint = "127.0.0.1:7102"\ntls_cert = "pki/ca/ca-node.crt"\ntls_cert_sha256 = "{"f" * 64}"\n'
        f'[[members.nodes.response_keys]]\nkey = "{pub()}"\n[[members.nodes.witness_keys]]\nkey = "{pub()}"\n'
    )
    fed = Federation.from_toml_text(example + ca, base=tmp_path, source="federation.md")
    assert (fed.format, fed.version, fed.signing and fed.signing.threshold) == (2, 7, 2)
    assert [g.name for g in fed.witness_policy.groups] == ["US", "CA", "independent"]
    response = fed.node("us-node").response_keys
    assert len(response.at(datetime(2026, 8, 28, tzinfo=UTC))) == 2
    assert len(fed.gateway.log.keys.all()) == 2
    found_agreement = fed.agreement_for("CA", "US", datetime(2027, 1, 1, tzinfo=UTC))
    assert found_agreement is not None and found_agreement.id == "us-ca-cloud-act"
