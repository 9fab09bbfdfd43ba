"""What every benchmark shares: a timer, the min / median / max of repeated measurements, and
a measurement run in a fresh process."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
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


def json_of(command: list[str], what: str) -> dict:
    """Run ``command`` in a fresh process; return the JSON object its last stdout line holds.
    A failure stops the benchmark, keeping the process's whole stderr in a log file."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        with tempfile.NamedTemporaryFile("w", prefix="deepspark-bench-", suffix=".log", delete=False) as log:
            log.write(done.stderr)
        sys.exit(f"{what} failed (whole log: {log.name}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
