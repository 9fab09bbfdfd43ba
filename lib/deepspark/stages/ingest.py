"""Stage ingest: raw landing files -> bronze Delta tables, one per configured source.

Input: files under ``<data_root>/landing/<source path>``. Output: ``bronze.<source>``.
Parameters: ``ingest.sources`` (format, path, reader options).

Every value is kept as the source gave it (CSV columns as strings); each row gets its
source file, batch id, ingest time and a row hash. Idempotent per file: a file already in
bronze is not ingested again.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from deepspark.config import SourceConfig
from deepspark.pipeline import Run, StageResult

METADATA = ["_source_file", "_batch_id", "_ingested_at", "_row_hash"]


def read_source(spark, source: SourceConfig, root) -> DataFrame:
    reader = spark.read.format(source.format).option("recursiveFileLookup", "true")
    if source.format == "csv":
        reader = reader.option("inferSchema", "false").option("mode", "PERMISSIVE")
    for key, value in source.options.items():
        reader = reader.option(key, value)
    return reader.load(str(root / source.path))


def add_ingest_metadata(df: DataFrame, batch_id: str) -> DataFrame:
    """Tag rows with where and when they came from, and a hash of their content."""
    content = [c for c in df.columns if c not in METADATA]
    return df.select(
        *content,
        F.input_file_name().alias("_source_file"),
        F.lit(batch_id).alias("_batch_id"),
        F.current_timestamp().alias("_ingested_at"),
        F.sha2(F.to_json(F.struct(*content)), 256).alias("_row_hash"),
    )


def only_new_files(df: DataFrame, ingested: DataFrame | None) -> DataFrame:
    if ingested is None:
        return df
    return df.join(ingested.select("_source_file").distinct(), "_source_file", "left_anti")


def ingest(run: Run) -> StageResult:
    result = StageResult()
    for name, source in run.config.ingest.sources.items():
        table = f"bronze.{name}"
        raw = add_ingest_metadata(read_source(run.spark, source, run.config.landing_root), run.run_id)
        existing = run.tables.read(table) if run.tables.exists(table) else None
        fresh = only_new_files(raw, existing)
        written = run.tables.write(fresh, table, evolve_schema=True)
        result.rows_in += written.rows_written
        result.rows_out += written.rows_written
        result.tables[table] = written.version
        result.metrics[f"{name}_rows"] = written.rows_written
    return result
