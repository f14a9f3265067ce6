"""``python -m benchmarks``: run every benchmark module and print one JSON line per case.

The engine, delegation and allocation benchmarks arrive with the issues that build
those services; until then there is nothing to measure and this says so.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main() -> int:
    """Run each ``benchmarks.<name>`` module that defines ``main()``."""
    modules = pkgutil.iter_modules(benchmarks.__path__)
    found = [m.name for m in modules if not m.name.startswith("_")]
    if not found:
        print("no benchmarks yet", file=sys.stderr)
        return 0
    for name in sorted(found):
        module = importlib.import_module(f"benchmarks.{name}")
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
