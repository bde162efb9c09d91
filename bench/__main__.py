"""``python -m bench``: every benchmark module in turn (each starts what it needs)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main() -> None:
    only = set(sys.argv[1:])
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or (only and info.name not in only):
            continue
        print(f"\n### bench.{info.name}")
        importlib.import_module(f"bench.{info.name}").main()


if __name__ == "__main__":
    main()
