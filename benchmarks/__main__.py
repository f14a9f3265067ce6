"""``python -m benchmarks [--quick]``: run every benchmark module and print one JSON line
per case.

A benchmark is a ``benchmarks.<name>`` module that defines ``main()``, which reads its
options (``--quick``) from the command line: ``allocation`` (allocate + release pairs/s
with 1, 4 and 8 clients on each store), ``engine`` (workflow throughput and overhead)
and ``delegation`` (find + delegate + complete latency on each store). Modules without
``main()`` (``servers``, the helpers starting a ``redis-server`` and a PostgreSQL
cluster) are not benchmarks and are skipped.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main() -> int:
    """Run each ``benchmarks.<name>`` module that defines ``main()``, by name."""
    modules = pkgutil.iter_modules(benchmarks.__path__)
    ran = 0
    for name in sorted(m.name for m in modules if not m.name.startswith("_")):
        module = importlib.import_module(f"benchmarks.{name}")
        run = getattr(module, "main", None)
        if callable(run):
            run()
            ran += 1
    if not ran:
        print("no benchmarks found", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
