"""Table mappings read from configuration data, with errors that name the field."""

from __future__ import annotations

import tomllib

import pytest

from comity.core.errors import ConfigError
from comity.nodes.mapped import SelectorColumn, TableMapping
from comity.nodes.schema import SelectorType

CONFIG = """
[[tables]]
table = "agency.subscribers"
record_type = "subscriber_account"
record_id = "id"
observed_at = "opened"
id_prefix = "sub-"
fields = { email = "mail", username = "login" }
selectors = [{ column = "mail", type = "EMAIL" }, { column = "login", type = "USERNAME", compare = "lower" }]

[[tables]]
table = "sessions"
record_type = "ip_connection_log"
record_id = "sid"
observed_at = "started"
fields = { ip_address = "ip" }
"""


def test_mappings_read_from_toml() -> None:
    first, second = (
        TableMapping.from_dict(t, where=f"tables[{i}]") for i, t in enumerate(tomllib.loads(CONFIG)["tables"])
    )
    assert first == TableMapping(
        table="agency.subscribers",
        record_type="subscriber_account",
        record_id="id",
        observed_at="opened",
        fields={"email": "mail", "username": "login"},
        selectors=(
            SelectorColumn("mail", SelectorType.EMAIL),
            SelectorColumn("login", SelectorType.USERNAME, "lower"),
        ),
        id_prefix="sub-",
    )
    assert second.selectors is None and second.dataset == "mapped" and second.id_prefix == ""


def _base(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "table": "t",
        "record_type": "subscriber_account",
        "record_id": "id",
        "observed_at": "at",
        "fields": {"email": "mail"},
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_base(record_id=None), "m.record_id"),
        (_base(table=3), "m.table"),
        (_base(colour="red"), "m"),
        (_base(fields=["mail"]), "m.fields"),
        (_base(selectors={"column": "mail"}), "m.selectors"),
        (_base(selectors=[{"column": "mail", "type": "PASSPORT"}]), "m.selectors[0].type"),
        (_base(selectors=[{"column": "mail", "type": "EMAIL", "compare": "like"}]), "m.selectors[0].compare"),
        (_base(selectors=[{"type": "EMAIL"}]), "m.selectors[0].column"),
        (_base(table="t; DROP TABLE x"), "mapping.table"),
        (_base(fields={"email": "mail--"}), "mapping.fields.email"),
    ],
)
def test_bad_mappings_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TableMapping.from_dict(data, where="m")
    assert caught.value.field == field
