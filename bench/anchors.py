"""Each tabular stage next to the job a user would write instead, on the same landed files and
machine: deepspark, plain PySpark + Delta (``plain_spark.py``) and DuckDB on one node
(``single_node.py``), each in a fresh process, ``--runs`` times.

Outputs are compared, not assumed: silver.customers, silver.orders and silver.reviews of the
plain PySpark job must equal deepspark's (row count and an order-free digest of every value),
and so must the quarantine's rows per (dataset, reason), every expectation's verdict and what it
measured, the three gold feature tables (vectors rounded to 6 decimals; a text set's slots in
any order), k-means' k and cost, the itemset and rule counts and each tree's chosen parameters.
DuckDB (cleaning and the feature aggregation: no validate or analytics stage) is compared on
its silver row counts and keys.
Usage (``bench/run.py`` drives it; alone it prints one JSON object):

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
COMPARED = ["ingest", "clean", "validate", "features", "analytics"]
GOLD = {  # deepspark's gold feature table -> the plain job's, its key, and whether slots keep order
    "customer_rfm_features": ("customer_rfm", "customer_id", True),
    "customer_value_features": ("customer_value", "customer_id", True),
    # CountVectorizer's vocabulary comes out in the order of its word-count partitions when it
    # holds every word (fewer than vocab_size): the same words, in another order on other files.
    "reviews_features": ("reviews", "review_id", False),
}


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


def rounded(df, ordered: bool = True, digits: int = 6):
    """``df`` with its floating-point arrays (feature vectors) rounded, and sorted unless their
    slots are ``ordered``: a mean or a deviation summed over differently partitioned files may
    differ in its last bits."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, DoubleType

    def values(name: str):
        kept = F.transform(name, lambda x: F.round(x, digits))
        return (kept if ordered else F.array_sort(kept)).alias(name)

    return df.select(
        *[
            values(c.name)
            if isinstance(c.dataType, ArrayType) and isinstance(c.dataType.elementType, DoubleType)
            else F.col(c.name)
            for c in df.schema.fields
        ]
    )


def quarantine_counts(df) -> dict[str, int]:
    return {
        f"{r['dataset']}/{r['reason']}": r["count"] for r in df.groupBy("dataset", "reason").count().collect()
    }


def deepspark_run(rows: int, master: str, landing_parent: Path) -> dict:
    import plain_spark

    with pipeline.prepared_run(rows, master, landing_parent) as (run, registry):
        seconds = {}
        for name in pipeline.STAGES:
            began = time.perf_counter()
            stage = registry[name](run)
            seconds[name] = round(time.perf_counter() - began, 2)
            if stage.status != "ok":
                raise RuntimeError(f"stage {name} ended {stage.status}: {stage.notes}")
            run.results[name] = stage
        jvm_peak = pipeline.jvm_peak_mib(run.spark)  # before the checks below add to it
        silver = {t: spark_digest(run.tables.read(f"silver.{t}"), k) for t, k in SILVER.items()}
        gold = {
            t: spark_digest(rounded(run.tables.read(f"gold.{t}"), ordered), k)
            for t, (_, k, ordered) in GOLD.items()
        }
        verdicts = {table: [] for table in SILVER}
        for row in run.tables.read("quality.expectation_results").collect():
            measured = row["unexpected_count"] if row["observed"] is None else json.loads(row["observed"])
            verdicts[row["dataset"]].append(
                [
                    f"{row['expectation']}:{row['column']}",
                    row["success"],
                    plain_spark.verdict_measure(row["expectation"], measured),
                ]
            )
        found = run.results["analytics"].metrics
        trees = {
            name: {
                "chosen": tree["chosen"],
                **{m: tree["metrics"][m] for m in ("f1", "rmse") if m in tree["metrics"]},
            }
            for name, tree in found["trees"].items()
        }
        return {
            "seconds": seconds,
            "driver_jvm_peak_mib": jvm_peak,
            "silver": silver,
            "quarantine": quarantine_counts(run.tables.read("quarantine.rows")),
            "gold": gold,
            "validate": {table: sorted(found) for table, found in verdicts.items()},
            "analytics": {
                "kmeans": {"k": found["kmeans"]["k"], "inertia": found["kmeans"]["inertia"]},
                "rules": {"itemsets": found["rules"]["itemsets"], "rules": found["rules"]["rules"]},
                "trees": trees,
            },
        }


def spark_run(rows: int, master: str, landing_parent: Path) -> dict:
    import plain_spark

    jars = sorted((Path(sys.prefix) / "share" / "deepspark" / "jars").glob("*.jar"))
    out = Path(tempfile.mkdtemp(prefix="plain-", dir=landing_parent))
    spark = plain_spark.session(master, pipeline.DRIVER_MEMORY, 4, jars, out)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        seconds, found = plain_spark.run(spark, landing_parent / "landing", out, key())
        jvm_peak = pipeline.jvm_peak_mib(spark)
        read = spark.read.format("delta").load
        silver = {t: spark_digest(read(str(out / "silver" / t)), k) for t, k in SILVER.items()}
        gold = {
            t: spark_digest(rounded(read(str(out / "gold" / plain)), ordered), k)
            for t, (plain, k, ordered) in GOLD.items()
        }
        return {
            "seconds": seconds,
            "driver_jvm_peak_mib": jvm_peak,
            "silver": silver,
            "quarantine": quarantine_counts(read(str(out / "quarantine"))),
            "gold": gold,
            **found,
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
    found["every expectation's verdict and measure: plain PySpark = deepspark's Great Expectations"] = {
        table: sorted(verdicts) for table, verdicts in plain["validate"].items()
    } == ours["validate"]
    for table in GOLD:
        how = "vectors to 6 decimals" if GOLD[table][2] else "vectors to 6 decimals, slots in any order"
        found[f"gold.{table} ({how}): plain PySpark = deepspark"] = (
            plain["gold"][table] == ours["gold"][table]
        )
    for part in ("kmeans", "rules"):
        found[f"{part}: plain MLlib = deepspark"] = plain["analytics"][part] == ours["analytics"][part]
    # Not the trees' scores: randomSplit draws per partition, and the two jobs' gold tables are
    # written as different files (a score differed in its third decimal at 50k rows).
    for name, tree in ours["analytics"]["trees"].items():
        found[f"tree {name}: plain MLlib chose deepspark's parameters"] = (
            plain["analytics"]["trees"][name]["chosen"] == tree["chosen"]
        )
    return found


def summary(result: dict) -> dict[str, dict]:
    """Per compared stage: each engine's median seconds and deepspark's ratio to each anchor
    (None where an engine has no such stage: DuckDB cleans and aggregates only)."""
    table = {}
    for stage in COMPARED:
        medians = {
            e: spread([r["seconds"][stage] for r in result["runs"][e]])["median"]
            if stage in result["runs"][e][0]["seconds"]
            else None
            for e in ENGINES
        }
        table[stage] = {**medians, "deepspark / spark": medians["deepspark"] / medians["spark"]}
        table[stage]["deepspark / duckdb"] = (
            medians["deepspark"] / medians["duckdb"] if medians["duckdb"] else None
        )
    return table


def jvm_peaks(result: dict) -> dict[str, float]:
    """The median driver JVM peak (VmHWM, MiB) of each Spark engine's runs: in local mode the
    executors live in that JVM, so it is the whole job's memory."""
    return {
        e: spread([r["driver_jvm_peak_mib"] for r in result["runs"][e]])["median"]
        for e in ("deepspark", "spark")
    }


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
            print(f"{stage:9} " + "  ".join(f"{k} {v:.2f}" for k, v in row.items() if v is not None))
        print("driver JVM peak, MiB: " + "  ".join(f"{e} {v:,.0f}" for e, v in jvm_peaks(result).items()))
        for check, passed in result["checks"].items():
            print(f"{'ok' if passed else 'DIFFERS'}: {check}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
