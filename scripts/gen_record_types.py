"""Rewrite the built-in record types in docs/operators.md from the node's default schema.

Usage: python scripts/gen_record_types.py
"""

from __future__ import annotations

from pathlib import Path

from comity.nodes.schema import default_schema
from comity.nodes.schema_docs import BEGIN, END, record_types_markdown

DOC = Path(__file__).resolve().parent.parent / "docs" / "operators.md"


def main() -> None:
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END) + 1
    DOC.write_text(text[:start] + record_types_markdown(default_schema()) + text[end:])


if __name__ == "__main__":
    main()
