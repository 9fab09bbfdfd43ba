"""The quarantine: one Delta table, ``quarantine.rows``, for every row any stage rejected:
clean's failed rules, train's undecodable images.

Columns: stage, dataset, reason (a short code: malformed, schema_drift, type_coercion, ...),
rule (which column and rule, readable), record (the row as JSON when it was rejected, or the
raw line when it could not be parsed), batch_id, run_id, row_hash (the bronze row's hash),
quarantined_at. Rows are merged on (stage, dataset, row_hash): rejecting a row again adds nothing.

The record holds source values as they arrived, so this table is as sensitive as bronze.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

QUARANTINE = "quarantine.rows"
KEYS = ["stage", "dataset", "row_hash"]


def to_quarantine(rejected: DataFrame, content: list[str], dataset: str, run_id: str) -> DataFrame:
    """Rows carrying ``_stage``, ``_reason``, ``_rule`` (and bronze metadata) in the table's shape.
    A row with ``_raw_record`` keeps that raw text as its record."""
    record = F.to_json(F.struct(*[F.col(f"`{c}`") for c in content]))
    if "_raw_record" in rejected.columns:
        record = F.coalesce(F.col("_raw_record"), record)
    return rejected.select(
        F.col("_stage").alias("stage"),
        F.lit(dataset).alias("dataset"),
        F.col("_reason").alias("reason"),
        F.col("_rule").alias("rule"),
        record.alias("record"),
        F.col("_batch_id").alias("batch_id"),
        F.lit(run_id).alias("run_id"),
        F.col("_row_hash").alias("row_hash"),
        F.current_timestamp().alias("quarantined_at"),
    )
