"""The operators' guide lists the built-in record types exactly as the node's schema declares them."""

from __future__ import annotations

from pathlib import Path

from comity.nodes.schema import default_schema
from comity.nodes.schema_docs import BEGIN, END, record_types_markdown

DOC = Path(__file__).resolve().parents[3] / "docs" / "operators.md"


def test_the_guide_lists_the_built_in_record_types() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index(BEGIN) : text.index(END) + len(END) + 1]
    assert block == record_types_markdown(default_schema()), "run: python scripts/gen_record_types.py"


def test_every_record_type_and_field_is_in_the_section() -> None:
    section = record_types_markdown(default_schema())
    for rt in default_schema():
        assert f"**`{rt.name}`**" in section
        for spec in rt.fields:
            assert f"| `{spec.name}` |" in section
