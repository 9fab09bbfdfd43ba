"""Where the pipeline's wall time goes, by line of deepspark code.

The driver waits on the JVM while Spark runs a job, so sampling the driver's main thread every
``--interval`` seconds and noting the innermost deepspark line on its stack attributes the
wall time of every Spark job, and of the Python in between, to the line that asked for it.
Runs the stages of ``bench/pipeline.py`` over the same generated landing data, up to the last
one profiled. Usage:

    .venv/bin/python bench/hotspots.py [--rows 1000000] [--stages clean,analytics] [--top 15]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pipeline

PACKAGE = f"{Path(pipeline.__file__).resolve().parents[1] / 'lib' / 'deepspark'}"


class LineSampler:
    """Counts, per sample, the innermost frame of the watched thread that is in deepspark."""

    def __init__(self, thread_id: int, interval: float):
        self.thread_id, self.interval = thread_id, interval
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> LineSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            frame = sys._current_frames().get(self.thread_id)
            while frame is not None and not frame.f_code.co_filename.startswith(PACKAGE):
                frame = frame.f_back
            if frame is not None:
                where = f"{Path(frame.f_code.co_filename).relative_to(PACKAGE)}:{frame.f_lineno}"
                self.counts[f"{where} ({frame.f_code.co_name})"] += 1

    def top(self, count: int) -> list[tuple[str, float]]:
        return [(line, n * self.interval) for line, n in self.counts.most_common(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--stages", default=",".join(pipeline.STAGES), help="the stages to profile")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "deepspark-bench")
    args = parser.parse_args()

    landing_parent = args.scratch / f"rows-{args.rows}"
    landing_parent.mkdir(parents=True, exist_ok=True)
    profiled = set(args.stages.split(","))
    unknown = sorted(profiled - set(pipeline.STAGES))
    if unknown:
        parser.error(f"--stages: {', '.join(unknown)}; expected some of {pipeline.STAGES}")
    last = max(pipeline.STAGES.index(name) for name in profiled)
    with pipeline.prepared_run(args.rows, args.master, landing_parent) as (run, registry):
        for name in pipeline.STAGES[: last + 1]:  # the stages after the last profiled one need not run
            began = time.perf_counter()
            with LineSampler(threading.get_ident(), args.interval) as sampler:
                run.results[name] = registry[name](run)
            print(f"{name}: {time.perf_counter() - began:.1f} s")
            if name in profiled:
                for line, seconds in sampler.top(args.top):
                    print(f"  {seconds:7.1f} s  {line}")


if __name__ == "__main__":
    main()
