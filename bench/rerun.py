"""Fixed costs on the default sample data: each tabular stage on a first run, then the same
stages again with nothing new landed (a scheduled run on a quiet day), in one session.

The anchor of the rerun is the first run itself: a rerun that redoes the work costs as much.
Prints each stage's seconds for both, and their totals (``--json``: as one JSON object).
Usage:

    .venv/bin/python bench/rerun.py [--json] [--set section.key=value ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from functools import partial
from pathlib import Path

from deepspark.config import load_config
from deepspark.pipeline import run_pipeline
from deepspark.run import Run
from deepspark.session import get_spark
from deepspark.tables import Tables
from stats import timed

STAGES = ("generate", "ingest", "clean", "validate", "features", "analytics")
RERUN = STAGES[1:]  # nothing new lands: generate is not run again
KEY = "0" * 64  # the PII keyed hash of a throwaway data root


def measure(folder: Path, sets: list[str]) -> dict[str, dict[str, float]]:
    overrides = [f"run.data_root={folder / 'data'}", f"run.runs_dir={folder / 'runs'}", *sets]
    config = load_config(overrides=overrides, environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": KEY})
    spark = get_spark(config)
    tables = Tables(spark, config)
    seconds: dict[str, dict[str, float]] = {"first": {}, "rerun": {}}
    for label, stages in (("first", STAGES), ("rerun", RERUN)):
        run = Run(config, spark, tables, f"bench-{label}")
        for stage in stages:
            seconds[label][stage] = timed(partial(run_pipeline, run, [stage]))
    spark.stop()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="deepspark-rerun-"))
    try:
        seconds = measure(folder, args.sets)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(seconds))
        return
    print(f"{'stage':<10} {'first s':>8} {'rerun s':>8}")
    for stage in STAGES:
        rerun = seconds["rerun"].get(stage)
        print(f"{stage:<10} {seconds['first'][stage]:>8.1f} {'-' if rerun is None else f'{rerun:.1f}':>8}")
    first, rerun = sum(seconds["first"].values()), sum(seconds["rerun"].values())
    print(f"{'total':<10} {first:>8.1f} {rerun:>8.1f}   rerun / first {rerun / first:.2f}")


if __name__ == "__main__":
    main()
