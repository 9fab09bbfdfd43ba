"""Clean-stage throughput, validation cost relative to clean, and driver peak memory.

For each size, a fresh process generates the sample shop (customers + orders + reviews, about
``rows`` landed rows), ingests it (untimed), then times the clean stage and the Great
Expectations validate stage on the same data, side by side. Driver peak memory is the peak
resident set of the Python driver and of the driver JVM (VmHWM), each process fresh per size.
Usage:

    .venv/bin/python bench/clean_validate.py [--rows 1000000 10000000]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS_PER_CUSTOMER = 7  # 1 customer record, 5 orders, 1 review


def measure(rows: int) -> dict:
    """One size, in this process: returns timings, row counts and peak memory."""
    from deepspark.config import load_config
    from deepspark.pipeline import Run
    from deepspark.session import get_spark
    from deepspark.stages.clean import clean
    from deepspark.stages.generate import generate
    from deepspark.stages.ingest import ingest
    from deepspark.stages.validate import validate
    from deepspark.tables import Tables

    scratch = Path(tempfile.mkdtemp(prefix="deepspark-bench-"))
    config = load_config(
        overrides=[
            f"run.data_root={scratch / 'data'}",
            f"run.runs_dir={scratch / 'runs'}",
            "spark.master=local[2]",
            f"generate.customers={rows // ROWS_PER_CUSTOMER}",
        ],
        environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": "bench-key"},
    )
    spark = get_spark(config)
    run = Run(config, spark, Tables(spark, config), "bench")
    try:
        generate(run)
        landed = ingest(run).rows_out
        began = time.perf_counter()
        cleaned = clean(run)
        clean_s = time.perf_counter() - began
        began = time.perf_counter()
        validated = validate(run)
        validate_s = time.perf_counter() - began
        jvm_pid = spark.sparkContext._gateway.proc.pid
        return {
            "rows_landed": landed,
            "clean_rows_in": cleaned.rows_in,
            "clean_s": round(clean_s, 2),
            "clean_rows_per_s": round(cleaned.rows_in / clean_s),
            "validate_s": round(validate_s, 2),
            "validate_over_clean": round(validate_s / clean_s, 3),
            "expectations": sum(m["expectations"] for m in validated.metrics.values() if isinstance(m, dict)),
            "driver_python_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "driver_jvm_peak_mib": round(_vm_hwm_kib(jvm_pid) / 1024),
            "driver_memory_setting": config.spark.driver_memory,
        }
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return

    results = {}
    for rows in args.rows:
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(rows)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            sys.exit(f"size {rows} failed:\n{done.stderr[-4000:]}")
        results[rows] = json.loads(done.stdout.strip().splitlines()[-1])

    print(f"machine: {platform.machine()}, {platform.python_version()}, local[2]")
    keys = list(next(iter(results.values())))
    print(f"{'':28}" + "".join(f"{rows:>16,}" for rows in results))
    for key in keys:
        print(f"{key:28}" + "".join(f"{str(r[key]):>16}" for r in results.values()))
    if len(results) > 1:
        small, large = list(results.values())[0], list(results.values())[-1]
        print(f"clean time ratio, largest / smallest size: {large['clean_s'] / small['clean_s']:.2f}x")


if __name__ == "__main__":
    main()
