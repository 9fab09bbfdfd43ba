"""What every benchmark shares: a timer and the min / median / max of repeated measurements."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action()`` took."""
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def spread(values: list[float]) -> dict[str, float]:
    """min, median and max of ``values`` (and how many there were)."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}
