"""Each tabular stage next to the job a user would write instead, on the same landed files and
machine: deepspark, plain PySpark + Delta (``plain_spark.py``) and DuckDB on one node
(``single_node.py``), each in a fresh process, ``--runs`` times.

Outputs are compared, not assumed: silver.customers, silver.orders and silver.reviews of the
plain PySpark job must equal deepspark's (row count and an order-free digest of every value),
and so must the quarantine's rows per (dataset, reason). DuckDB's silver is compared on its row
counts and its keys' digest. Usage (``bench/run.py`` drives it; alone it prints one JSON object):

    .venv/bin/python bench/anchors.py [--rows 1000000] [--runs 1] [--master 'local[2]']
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pipeline
from stats import json_of, spread

SILVER = {  # table -> its key
    "customers": "customer_id",
    "orders": "order_id",
    "reviews": "review_id",
}
ENGINES = ["deepspark", "spark", "duckdb"]
COMPARED = ["ingest", "clean", "features"]


def spark_digest(df, key: str) -> dict:
    """Rows, the sum of a 48-bit hash of each row's values (every column but bronze's metadata,
    by name) and the sum of the keys: equal for the same rows in any order, unequal for almost
    any change."""
    from pyspark.sql import functions as F

    columns = sorted(c for c in df.columns if c not in ("_batch_id", "_row_hash"))
    row = F.sha2(F.to_json(F.struct(*columns)), 256)
    found = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.conv(F.substring(row, 1, 12), 16, 10).cast("decimal(38,0)")).cast("string").alias("values"),
        F.sum(F.col(key).cast("decimal(38,0)")).cast("string").alias("keys"),
    ).first()
    return {"rows": found["rows"], "values": found["values"], "keys": found["keys"]}


def quarantine_counts(df) -> dict[str, int]:
    return {
        f"{r['dataset']}/{r['reason']}": r["count"] for r in df.groupBy("dataset", "reason").count().collect()
    }


def deepspark_run(rows: int, master: str, landing_parent: Path) -> dict:
    with pipeline.prepared_run(rows, master, landing_parent) as (run, registry):
        seconds = {}
        for name in pipeline.STAGES:
            began = time.perf_counter()
            stage = registry[name](run)
            seconds[name] = round(time.perf_counter() - began, 2)
            if stage.status != "ok":
                raise RuntimeError(f"stage {name} ended {stage.status}: {stage.notes}")
            run.results[name] = stage
        silver = {t: spark_digest(run.tables.read(f"silver.{t}"), k) for t, k in SILVER.items()}
        return {
            "seconds": seconds,
            "silver": silver,
            "quarantine": quarantine_counts(run.tables.read("quarantine.rows")),
        }


def spark_run(rows: int, master: str, landing_parent: Path) -> dict:
    import plain_spark

    jars = sorted((Path(sys.prefix) / "share" / "deepspark" / "jars").glob("*.jar"))
    out = Path(tempfile.mkdtemp(prefix="plain-", dir=landing_parent))
    spark = plain_spark.session(master, pipeline.DRIVER_MEMORY, 4, jars, out)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        seconds = plain_spark.run(spark, landing_parent / "landing", out, key())
        read = spark.read.format("delta").load
        silver = {t: spark_digest(read(str(out / "silver" / t)), k) for t, k in SILVER.items()}
        return {
            "seconds": seconds,
            "silver": silver,
            "quarantine": quarantine_counts(read(str(out / "quarantine"))),
        }
    finally:
        spark.stop()
        shutil.rmtree(out, ignore_errors=True)


def duckdb_run(rows: int, master: str, landing_parent: Path) -> dict:
    import single_node

    out = Path(tempfile.mkdtemp(prefix="duckdb-", dir=landing_parent))
    try:
        return single_node.run(landing_parent / "landing", out, key())
    finally:
        shutil.rmtree(out, ignore_errors=True)


def key() -> bytes:
    return pipeline.BENCH_KEY["DEEPSPARK_SECRET_PII_HMAC_KEY"].encode()


RUNNERS = {"deepspark": deepspark_run, "spark": spark_run, "duckdb": duckdb_run}


def compare(rows: int, master: str, count: int, scratch: Path) -> dict:
    """``count`` runs of each engine at one size, each in a fresh process, and the checks."""
    landing_parent = scratch / f"rows-{rows}"
    landing_parent.mkdir(parents=True, exist_ok=True)
    json_of(
        [
            sys.executable,
            str(Path(pipeline.__file__)),
            "--one",
            str(rows),
            "--master",
            master,
            "--at",
            str(landing_parent),
            "--generate-only",
        ],
        f"landing {rows:,} rows",
    )
    runs: dict[str, list[dict]] = {engine: [] for engine in ENGINES}
    for _ in range(count):
        for engine in ENGINES:
            command = [sys.executable, __file__, "--one", engine, "--rows", str(rows), "--master", master]
            runs[engine].append(
                json_of(command + ["--at", str(landing_parent)], f"{engine} at {rows:,} rows")
            )
            print(json.dumps({engine: runs[engine][-1]}), file=sys.stderr)
    return {"rows": rows, "runs": runs, "checks": checks(runs)}


def checks(runs: dict[str, list[dict]]) -> dict[str, bool]:
    ours, plain, duck = runs["deepspark"][0], runs["spark"][0], runs["duckdb"][0]
    found = {}
    for table in SILVER:
        found[f"silver.{table}: plain PySpark = deepspark"] = plain["silver"][table] == ours["silver"][table]
        found[f"silver.{table}: DuckDB keys = deepspark's"] = duck["silver"][table] == {
            k: ours["silver"][table][k] for k in ("rows", "keys")
        }
    found["quarantine per reason: plain PySpark = deepspark"] = plain["quarantine"] == ours["quarantine"]
    return found


def summary(result: dict) -> dict[str, dict]:
    """Per compared stage: each engine's median seconds and deepspark's ratio to each anchor."""
    table = {}
    for stage in COMPARED:
        medians = {e: spread([r["seconds"][stage] for r in result["runs"][e]])["median"] for e in ENGINES}
        table[stage] = {**medians, "deepspark / spark": medians["deepspark"] / medians["spark"]}
        table[stage]["deepspark / duckdb"] = medians["deepspark"] / medians["duckdb"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "deepspark-bench")
    parser.add_argument("--one", choices=ENGINES, help=argparse.SUPPRESS)  # internal: one run, this process
    parser.add_argument("--at", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(RUNNERS[args.one](args.rows, args.master, args.at)))
        return
    result = compare(args.rows, args.master, args.runs, args.scratch)
    result["summary"] = summary(result)
    if not args.json:
        for stage, row in result["summary"].items():
            print(f"{stage:9} " + "  ".join(f"{k} {v:.2f}" for k, v in row.items()))
        for check, passed in result["checks"].items():
            print(f"{'ok' if passed else 'DIFFERS'}: {check}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
