"""Rewrite the check catalogue in docs/audit.md from the registered checks.

Usage: python scripts/gen_check_table.py
"""

from __future__ import annotations

from pathlib import Path

from comity.core.refusal_docs import BEGIN, END, load_all_checks, markdown_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "audit.md"


def main() -> None:
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END) + 1
    DOC.write_text(text[:start] + markdown_table(load_all_checks()) + text[end:])


if __name__ == "__main__":
    main()
