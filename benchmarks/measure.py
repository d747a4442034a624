"""Timing and summarising what was timed."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Call `function`: (milliseconds it took, what it returned)."""
    started = time.perf_counter()
    result = function()
    return (time.perf_counter() - started) * 1000, result


def percentiles(values: Iterable[float], digits: int = 2) -> dict[str, Any]:
    data = sorted(values)
    if not data:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "mean": None, "max": None}

    def at(q: float) -> float:
        # Nearest rank: an observed value, never interpolated past the maximum.
        index = min(len(data) - 1, max(0, round(q * len(data) + 0.5) - 1))
        return round(data[index], digits)

    return {
        "n": len(data),
        "p50": round(statistics.median(data), digits),
        "p95": at(0.95),
        "p99": at(0.99),
        "mean": round(statistics.fmean(data), digits),
        "max": round(data[-1], digits),
    }
