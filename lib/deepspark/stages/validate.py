"""Stage validate: the quality gate over silver, run before anything reads it.

Input: ``silver.<dataset>`` for each dataset in ``clean.datasets``. Output: the checks'
results in the run summary. Parameters: ``validate.min_rows``, ``validate.stop_on_critical``.

Checks, all computed by Spark in one aggregation per table: at least ``min_rows`` rows,
keys never null, keys unique. A failed check stops the run when ``stop_on_critical``.
(Great Expectations suites declared in conf/ replace this gate in the data-quality issue.)
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from deepspark.pipeline import Run, StageFailed, StageResult


def check_table(df: DataFrame, keys: list[str], min_rows: int) -> list[dict]:
    key = F.struct(*keys)
    null_key = F.greatest(*[F.col(k).isNull() for k in keys]) if len(keys) > 1 else F.col(keys[0]).isNull()
    stats = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(null_key.cast("long")).alias("null_keys"),
        F.count_distinct(key).alias("distinct_keys"),
    ).first()
    rows, null_keys = stats["rows"], stats["null_keys"] or 0
    duplicates = rows - null_keys - stats["distinct_keys"]
    return [
        {"check": "min_rows", "expected": min_rows, "observed": rows, "ok": rows >= min_rows},
        {"check": "keys_not_null", "columns": keys, "observed": null_keys, "ok": null_keys == 0},
        {"check": "keys_unique", "columns": keys, "observed": duplicates, "ok": duplicates == 0},
    ]


def validate(run: Run) -> StageResult:
    result = StageResult()
    failed = []
    for dataset, rules in run.config.clean.datasets.items():
        table = f"silver.{dataset}"
        checks = check_table(
            run.tables.read(table), rules.keys, run.config.validate_.min_rows.get(dataset, 1)
        )
        result.metrics[table] = checks
        result.tables[table] = run.tables.version(table)
        failed += [f"{table}: {c['check']} observed {c['observed']}" for c in checks if not c["ok"]]
    result.notes = failed
    if failed and run.config.validate_.stop_on_critical:
        raise StageFailed("critical validation failures: " + "; ".join(failed))
    result.status = "ok" if not failed else "warning"
    return result
