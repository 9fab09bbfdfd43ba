"""Stage clean: bronze -> silver per dataset, rejected rows to ``quarantine.rows``.

Input: ``bronze.<dataset>``. Output: ``silver.<dataset>`` (overwritten each run) and
``quarantine.rows`` (merged on stage, dataset and row hash, so a rerun adds nothing).
Parameters: ``clean.datasets`` (keys, order_by, types, drop_columns).

Steps: trim text; drop PII columns that must never reach silver; remove exact duplicates;
cast to the declared types (a value that does not cast sends its row to quarantine with the
reason); keep the latest row per key. Every row is accounted for:
``rows_in = rows_out + rows_quarantined + rows_deduplicated``, checked on every run.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from deepspark.config import DatasetCleaning
from deepspark.pipeline import Run, StageFailed, StageResult
from deepspark.stages.ingest import METADATA

QUARANTINE = "quarantine.rows"


def trim_text(df: DataFrame) -> DataFrame:
    return df.select(
        *[
            F.trim(F.col(f"`{f.name}`")).alias(f.name)
            if isinstance(f.dataType, StringType) and f.name not in METADATA
            else F.col(f"`{f.name}`")
            for f in df.schema
        ]
    )


def drop_exact_duplicates(df: DataFrame) -> DataFrame:
    content = [c for c in df.columns if c not in METADATA]
    return df.dropDuplicates(content)


def cast_types(df: DataFrame, types: dict[str, str]) -> tuple[DataFrame, DataFrame]:
    """Rows whose values all cast, and the others with a reason naming the first bad column."""
    missing = [c for c in types if c not in df.columns]
    if missing:
        raise StageFailed(f"clean.datasets: columns {missing} are not in the data ({', '.join(df.columns)})")
    failures = [
        F.when(
            F.col(c).isNotNull() & F.expr(f"try_cast(`{c}` AS {t})").isNull(), F.lit(f"type_coercion:{c}:{t}")
        )
        for c, t in types.items()
    ]
    reason = F.coalesce(*failures, F.lit(None).cast("string")) if failures else F.lit(None)
    checked = df.withColumn("_reason", reason)
    good = (
        checked.filter(F.col("_reason").isNull())
        .drop("_reason")
        .select(
            *[
                F.expr(f"try_cast(`{c}` AS {types[c]})").alias(c) if c in types else F.col(f"`{c}`")
                for c in df.columns
            ]
        )
    )
    bad = checked.filter(F.col("_reason").isNotNull())
    return good, bad


def keep_latest(df: DataFrame, keys: list[str], order_by: str | None) -> DataFrame:
    if order_by is None:
        return df.dropDuplicates(keys)
    window = Window.partitionBy(*keys).orderBy(F.col(order_by).desc_nulls_last(), F.col("_row_hash"))
    return df.withColumn("_n", F.row_number().over(window)).filter("_n = 1").drop("_n")


def to_quarantine(bad: DataFrame, dataset: str, run_id: str) -> DataFrame:
    content = [c for c in bad.columns if c not in METADATA and c != "_reason"]
    return bad.select(
        F.lit("clean").alias("stage"),
        F.lit(dataset).alias("dataset"),
        F.split(F.col("_reason"), ":").getItem(0).alias("reason"),
        F.col("_reason").alias("rule"),
        F.to_json(F.struct(*content)).alias("record"),
        F.col("_batch_id").alias("batch_id"),
        F.lit(run_id).alias("run_id"),
        F.col("_row_hash").alias("row_hash"),
    )


def clean_dataset(bronze: DataFrame, rules: DatasetCleaning) -> dict[str, DataFrame]:
    """The pure part: bronze in, silver + quarantine + the frames counted for accounting."""
    trimmed = trim_text(bronze).drop(*[c for c in rules.drop_columns if c in bronze.columns])
    unique = drop_exact_duplicates(trimmed)
    typed, bad = cast_types(unique, rules.types)
    silver = keep_latest(typed, rules.keys, rules.order_by)
    return {"unique": unique, "typed": typed, "silver": silver, "bad": bad}


def clean(run: Run) -> StageResult:
    result = StageResult()
    quarantined = []
    for dataset, rules in run.config.clean.datasets.items():
        bronze = run.tables.read(f"bronze.{dataset}")
        frames = clean_dataset(bronze, rules)
        rows_in = bronze.count()
        unique = frames["unique"].cache()
        exact_dups = rows_in - unique.count()
        written = run.tables.write(
            frames["silver"].drop(*METADATA[1:3]), f"silver.{dataset}", mode="overwrite", evolve_schema=True
        )
        rows_bad = frames["bad"].count()
        key_dups = frames["typed"].count() - written.rows_written
        unique.unpersist()
        if rows_bad:
            quarantined.append(to_quarantine(frames["bad"], dataset, run.run_id))
        balanced = rows_in == written.rows_written + rows_bad + exact_dups + key_dups
        result.metrics[dataset] = {
            "rows_in": rows_in,
            "rows_out": written.rows_written,
            "rows_quarantined": rows_bad,
            "rows_deduplicated": exact_dups + key_dups,
            "balanced": balanced,
        }
        if not balanced:
            raise StageFailed(f"clean {dataset}: rows do not add up: {result.metrics[dataset]}")
        result.rows_in += rows_in
        result.rows_out += written.rows_written
        result.rows_quarantined += rows_bad
        result.rows_deduplicated += exact_dups + key_dups
        result.tables[f"silver.{dataset}"] = written.version
    if quarantined:
        # Re-cleaning the same bronze rows must not quarantine them twice.
        written = run.tables.merge(
            reduce(DataFrame.unionByName, quarantined), QUARANTINE, ["stage", "dataset", "row_hash"]
        )
        result.tables[QUARANTINE] = written.version
    return result
