"""Run the benchmarks: ``python benchmarks/run.py [--quick | --smoke] [--help]``.

Or ``nox -s bench`` (``nox -s bench -- --quick``). See benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
