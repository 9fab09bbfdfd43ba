"""Delta tables through delta-spark, for sessions with io.delta on the classpath (clusters).

Needs the session extension and catalog (conf/cluster/spark.yaml sets them) and the jars
(``--packages io.delta:delta-spark_2.13:<version>``). Schema enforcement, atomic commits and
conflict detection are delta-spark's own; errors are translated into the layer's.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession

from deepspark.config import TablesConfig
from deepspark.tables.errors import ConcurrentWriteError, SchemaMismatchError, TableError
from deepspark.tables.schema import check_storable
from deepspark.tables.types import WriteMode, WriteResult


class DeltaSparkEngine:
    name = "spark"

    def __init__(self, spark: SparkSession, config: TablesConfig):
        from delta.tables import DeltaTable  # the delta-spark Python API

        self.spark = spark
        self.config = config
        self.DeltaTable = DeltaTable

    def exists(self, path: str) -> bool:
        return self.DeltaTable.isDeltaTable(self.spark, path)

    def read(self, path: str, version: int | None, timestamp: datetime | None) -> DataFrame:
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if timestamp is not None:
            reader = reader.option("timestampAsOf", timestamp.isoformat(sep=" "))
        return reader.load(path)

    def files(self, path: str, version: int | None) -> list[str]:
        return list(self.read(path, version, None).inputFiles())

    def write(
        self,
        df: DataFrame,
        path: str,
        mode: WriteMode,
        partition_by: list[str] | None,
        evolve_schema: bool,
    ) -> WriteResult:
        check_storable(df.schema, path)
        writer = (
            df.write.format("delta")
            .mode(mode)
            .option("mergeSchema", str(evolve_schema).lower())
            .option("maxRecordsPerFile", self.config.max_records_per_file)
        )
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        try:
            writer.save(path)
        except AnalysisException as error:
            raise _translate(error, path) from error
        return self._result(path)

    def merge(self, df: DataFrame, path: str, keys: list[str]) -> WriteResult:
        condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        try:
            (
                self.DeltaTable.forPath(self.spark, path)
                .alias("t")
                .merge(df.alias("s"), condition)
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )
        except AnalysisException as error:
            raise _translate(error, path) from error
        return self._result(path)

    def version(self, path: str) -> int:
        return self.DeltaTable.forPath(self.spark, path).history(1).first()["version"]

    def history(self, path: str) -> list[dict]:
        rows = self.DeltaTable.forPath(self.spark, path).history().collect()  # the log: small
        return [
            {
                "version": row["version"],
                "timestamp": int(row["timestamp"].timestamp() * 1000),
                "operation": row["operation"],
                "parameters": dict(row["operationParameters"] or {}),
                "engine": row["engineInfo"],
            }
            for row in rows
        ]

    def compact(self, path: str) -> WriteResult:
        self.DeltaTable.forPath(self.spark, path).optimize().executeCompaction()
        return self._result(path)

    def vacuum(self, path: str, retention_hours: float) -> list[str]:
        self.spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        self.DeltaTable.forPath(self.spark, path).vacuum(retention_hours)
        return []  # delta-spark reports deleted files in its logs, not to the caller

    def _result(self, path: str) -> WriteResult:
        last = self.DeltaTable.forPath(self.spark, path).history(1).first()
        metrics = {k: int(v) for k, v in (last["operationMetrics"] or {}).items() if v.isdigit()}
        rows = metrics.get("numOutputRows", metrics.get("numTargetRowsInserted", 0))
        return WriteResult(
            path,
            last["version"],
            rows,
            metrics.get("numFiles", 0),
            metrics.get("numRemovedFiles", 0),
            metrics,
        )


def _translate(error: AnalysisException, path: str) -> TableError:
    text = str(error)
    if "schema mismatch" in text.lower() or "DELTA_FAILED_TO_MERGE_FIELDS" in text:
        return SchemaMismatchError(f"{path}: {text}")
    if "Concurrent" in text:
        return ConcurrentWriteError(f"{path}: {text}")
    return TableError(f"{path}: {text}")
