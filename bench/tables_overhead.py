"""Delta layer overhead: deepspark ``Tables`` (delta-rs log + Spark parquet) vs raw Spark parquet.

Writes and reads the same generated DataFrame both ways, side by side in one run, and prints
min / median / max seconds and the ratio of medians (``--json``: every time measured, as
``bench/run.py`` reads it). Usage:

    .venv/bin/python bench/tables_overhead.py [--rows 1000000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
from functools import partial
from pathlib import Path

from deepspark.config import load_config
from deepspark.session import get_spark
from deepspark.tables import Tables
from pyspark.sql import functions as F
from stats import spread, timed


def total(df) -> None:
    df.agg(F.sum("amount")).collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the times as one JSON object")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="deepspark-bench-"))
    config = load_config(overrides=[f"run.data_root={scratch}", "spark.master=local[2]"])
    spark = get_spark(config)
    tables = Tables(spark, config)
    df = spark.range(args.rows).select(
        "id",
        (F.col("id") % 1000).alias("customer_id"),
        (F.rand(1) * 100).alias("amount"),
        F.concat(F.lit("item-"), (F.col("id") % 97).cast("string")).alias("item"),
    )

    timings: dict[str, list[float]] = {
        k: [] for k in ("deepspark write", "spark parquet write", "deepspark read", "spark parquet read")
    }
    # Untimed warm-up of both paths: JIT, class loading and Python workers are not the subject.
    df.write.parquet(str(scratch / "warm"))
    tables.write(df, "bench.warm")
    tables.read("bench.warm").agg(F.sum("amount")).collect()
    for i in range(args.repeat):
        raw, name = str(scratch / f"raw-{i}"), f"bench.t{i}"
        timings["spark parquet write"].append(timed(partial(df.write.parquet, raw)))
        timings["deepspark write"].append(timed(partial(tables.write, df, name)))
        timings["spark parquet read"].append(timed(partial(total, spark.read.parquet(raw))))
        timings["deepspark read"].append(timed(partial(total, tables.read(name))))

    spark.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps(timings))
        return
    rows = {k: spread(v) for k, v in timings.items()}
    print(
        f"# Delta layer overhead, {args.rows:,} rows, {args.repeat} runs, "
        f"{platform.processor() or platform.machine()}, local[2]\n"
    )
    print("| operation | min s | median s | max s |\n|---|---:|---:|---:|")
    for k, v in rows.items():
        print(f"| {k} | {v['min']:.2f} | {v['median']:.2f} | {v['max']:.2f} |")
    write_ratio = rows["deepspark write"]["median"] / rows["spark parquet write"]["median"]
    read_ratio = rows["deepspark read"]["median"] / rows["spark parquet read"]["median"]
    print(f"\nratio deepspark/raw: write {write_ratio:.2f}x, read {read_ratio:.2f}x")


if __name__ == "__main__":
    main()
