"""The benchmarks live in the repository's ``bench/`` folder, outside the installed packages."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    # `pytest` (unlike `python -m pytest`) does not put the working directory on the path.
    sys.path.insert(0, _ROOT)
