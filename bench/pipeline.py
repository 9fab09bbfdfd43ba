"""The tabular pipeline at scale: ingest -> clean -> validate -> features -> analytics.

The sample shop is generated once per size (about ``rows`` landed records: per customer one
customer record, five orders and one review) and kept under ``--scratch``. Every run is a fresh
process with a fresh data root over that landing folder, so it ingests everything and its
driver peak memory is its own: the Python driver's peak resident set and the driver JVM's
(VmHWM). Usage (``bench/run.py`` drives it; alone it prints one JSON object per run):

    .venv/bin/python bench/pipeline.py [--rows 1000000] [--runs 3] [--master 'local[2]']
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from stats import json_of

STAGES = ["ingest", "clean", "validate", "features", "analytics"]
RECORDS_PER_CUSTOMER = 7  # 1 customer record, 5 orders, 1 review
# Local mode: the executors live in the driver's heap (README: "Memory in local mode"). Every
# bench process (and the plain PySpark anchor's) takes it from the environment when set there.
DRIVER_MEMORY = os.environ.get("DEEPSPARK_BENCH_DRIVER_MEMORY", "6g")
BENCH_KEY = {"DEEPSPARK_SECRET_PII_HMAC_KEY": "bench-only-key"}


def overrides(scratch: Path, rows: int, master: str) -> list[str]:
    return [
        f"spark.driver_memory={DRIVER_MEMORY}",
        f"run.data_root={scratch / 'data'}",
        f"run.runs_dir={scratch / 'runs'}",
        f"spark.master={master}",
        f"generate.customers={rows // RECORDS_PER_CUSTOMER}",
        f"ingest.landing_dir={scratch.parent / 'landing'}",
    ]


@contextmanager
def prepared_run(rows: int, master: str, landing_parent: Path):
    """A Run with a fresh data root over the size's landing data (generated on first use), and
    the stage registry; the session stops and the data root goes at the end."""
    from deepspark.config import load_config
    from deepspark.pipeline import STAGES as registry
    from deepspark.run import Run
    from deepspark.session import get_spark
    from deepspark.tables import Tables

    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=landing_parent))
    config = load_config(overrides=overrides(scratch, rows, master), environ=BENCH_KEY)
    spark = get_spark(config)
    run = Run(config, spark, Tables(spark, config), "bench")
    try:
        registry["generate"](run)  # a no-op once the size's landing folder exists
        yield run, registry
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def one_run(rows: int, master: str, landing_parent: Path) -> dict:
    """One pipeline run in this process: seconds and rows of each stage, driver peak memory."""
    with prepared_run(rows, master, landing_parent) as (run, registry):
        result: dict = {"rows": rows, "master": master, "stages": {}}
        for name in STAGES:
            began = time.perf_counter()
            stage = registry[name](run)
            seconds = time.perf_counter() - began
            if stage.status != "ok":
                raise RuntimeError(f"stage {name} ended {stage.status}: {stage.notes}")
            run.results[name] = stage
            result["stages"][name] = {"seconds": round(seconds, 2), "rows_in": stage.rows_in}
        result["landed"] = result["stages"]["ingest"]["rows_in"]
        result["driver_python_peak_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        result["driver_jvm_peak_mib"] = jvm_peak_mib(run.spark)
        return result


def land(rows: int, master: str, landing_parent: Path) -> dict:
    """Only generate the size's landing data, so that no measured run does."""
    with prepared_run(rows, master, landing_parent) as (run, _):
        return {"rows": rows, "landing": str(run.config.landing_root)}


def jvm_peak_mib(spark) -> int:
    """The peak resident memory so far of the session's driver JVM (started by this process)."""
    return round(vm_hwm_kib(spark.sparkContext._gateway.proc.pid) / 1024)


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def runs(rows: int, master: str, count: int, scratch: Path) -> list[dict]:
    """``count`` runs at one size and master, each in a fresh process."""
    landing_parent = scratch / f"rows-{rows}"
    landing_parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--one", str(rows), "--master", master, "--at", str(landing_parent)]
    results = []
    for extra in [["--generate-only"]] + [[]] * count:
        results.append(json_of(command + extra, f"pipeline at {rows:,} rows on {master}"))
        print(json.dumps(results[-1]), file=sys.stderr)
    return results[1:]  # the measured runs, not the one that generated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "deepspark-bench")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one run, this process
    parser.add_argument("--at", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        measure = land if args.generate_only else one_run
        print(json.dumps(measure(args.one, args.master, args.at)))
        return
    for result in runs(args.rows, args.master, args.runs, args.scratch):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
