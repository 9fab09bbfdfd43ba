"""The Delta layer on both engines against raw Spark parquet: write, read and merge.

Writes and reads the same generated DataFrame through ``Tables`` on delta-spark (``spark``),
on delta-rs + Spark parquet (``rs``) and as plain parquet, side by side in one run and one
session; merges upsert 1% of the keys plus 1% new ones (raw parquet has no merge: its anchor is
what a user would write instead, a full rewrite of the table joined with the updates). Prints
min / median / max seconds and each engine's ratio to raw parquet (``--json``: every time
measured, as ``bench/run.py`` reads it). Usage:

    .venv/bin/python bench/tables_overhead.py [--rows 2000000] [--repeat 3] [--json]
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

ENGINES = ("spark", "rs")


def total(df) -> None:
    df.agg(F.sum("amount")).collect()


def rewrite_with_updates(spark, path: str, updates, into: str) -> None:
    """Raw parquet's merge: the table without the updated keys, plus the updates, rewritten."""
    kept = spark.read.parquet(path).join(updates.select("id"), "id", "left_anti")
    kept.unionByName(updates).write.parquet(into)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the times as one JSON object")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="deepspark-bench-"))
    config = load_config(overrides=[f"run.data_root={scratch}", "spark.master=local[2]"])
    spark = get_spark(config)
    layers = {
        name: Tables(
            spark, config.model_copy(update={"tables": config.tables.model_copy(update={"engine": name})})
        )
        for name in ENGINES
    }
    df = spark.range(args.rows).select(
        "id",
        (F.col("id") % 1000).alias("customer_id"),
        (F.rand(1) * 100).alias("amount"),
        F.concat(F.lit("item-"), (F.col("id") % 97).cast("string")).alias("item"),
    )
    step = 100  # 1% of the keys updated, as many new
    keys = spark.range(0, args.rows, step).union(spark.range(args.rows, args.rows + args.rows // step))
    updates = keys.select(
        "id",
        F.lit(7).cast("long").alias("customer_id"),
        F.lit(1.0).alias("amount"),
        F.lit("new").alias("item"),
    ).cache()
    updates.count()

    operations = ("write", "read", "merge")
    timings: dict[str, list[float]] = {
        f"{who} {op}": [] for who in ("parquet", *ENGINES) for op in operations
    }
    # Untimed warm-up of every path: JIT, class loading and Python workers are not the subject.
    df.write.parquet(str(scratch / "warm"))
    for name, tables in layers.items():
        tables.write(df, f"warm.{name}")
        total(tables.read(f"warm.{name}"))
    for i in range(args.repeat):
        raw = str(scratch / f"raw-{i}")
        timings["parquet write"].append(timed(partial(df.write.parquet, raw)))
        timings["parquet read"].append(timed(partial(total, spark.read.parquet(raw))))
        timings["parquet merge"].append(
            timed(partial(rewrite_with_updates, spark, raw, updates, str(scratch / f"raw-merged-{i}")))
        )
        for name, tables in layers.items():
            table = f"bench_{name}.t{i}"
            timings[f"{name} write"].append(timed(partial(tables.write, df, table)))
            timings[f"{name} read"].append(timed(partial(total, tables.read(table))))
            timings[f"{name} merge"].append(timed(partial(tables.merge, updates, table, ["id"])))

    spark.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps(timings))
        return
    rows = {k: spread(v) for k, v in timings.items()}
    print(
        f"# Delta engines vs raw parquet, {args.rows:,} rows, {args.repeat} runs, "
        f"{platform.processor() or platform.machine()}, local[2]\n"
    )
    print(
        "| operation | parquet s | delta-spark s | delta-rs s | delta-spark / parquet | delta-rs / parquet |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for op in operations:
        base, ds, rs = (rows[f"{who} {op}"]["median"] for who in ("parquet", "spark", "rs"))
        print(f"| {op} | {base:.2f} | {ds:.2f} | {rs:.2f} | {ds / base:.2f}x | {rs / base:.2f}x |")


if __name__ == "__main__":
    main()
