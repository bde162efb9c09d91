"""Timing rounds and printing tables, shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def rate(fn: Callable[[], int], rounds: int = 5) -> tuple[float, list[float]]:
    """Median items/s of ``fn`` (which returns how many items it processed)."""
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), rates


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    cells = [header, *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, row in enumerate(cells):
        print(
            "  ".join(
                str(c).rjust(w) if j else str(c).ljust(w)
                for j, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
    return str(value)
