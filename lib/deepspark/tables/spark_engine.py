"""Delta tables through delta-spark: the engine of every Spark cluster, and of local mode when
the environment holds the jars (deploy/env/jars.lock; the session loads them).

Schema enforcement, atomic commits, conflict detection and application transactions are
delta-spark's own. What it leaves to the caller is made the same as the rs engine's here: the
schema checks and their messages (shared in :mod:`~deepspark.tables.schema`), the result of a
write (the commit this writer made, found in the history by a write id in ``userMetadata``,
never just the newest one), a vacuum that returns what it deleted, and errors as the layer's.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from deepspark.config import TablesConfig
from deepspark.errors import describe
from deepspark.tables.errors import ConcurrentWriteError, SchemaMismatchError, TableError
from deepspark.tables.schema import align_to_table, check_storable
from deepspark.tables.types import (
    COMMIT_ATTEMPTS,
    DUPLICATE_KEYS,
    TABLE_PROPERTIES,
    Txn,
    WriteMode,
    WriteResult,
    relative_to_table,
)

USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
# delta-spark's conflicts (DeltaConcurrentModificationException and its kinds), by class or code.
LOST_RACE = re.compile(
    r"Concurrent\w*Exception|ProtocolChangedException|MetadataChangedException|"
    r"DELTA_CONCURRENT_\w+|DELTA_PROTOCOL_CHANGED|DELTA_METADATA_CHANGED"
)
HISTORY_SEARCH = 20  # commits searched for this writer's own before the whole history


class DeltaSparkEngine:
    name = "spark"

    def __init__(self, spark: SparkSession, config: TablesConfig):
        from delta.tables import DeltaTable  # the delta-spark Python API

        self.spark = spark
        self.config = config
        self.DeltaTable = DeltaTable
        for key, value in TABLE_PROPERTIES.items():  # the properties of every table it creates
            spark.conf.set(f"spark.databricks.delta.properties.defaults.{key.removeprefix('delta.')}", value)

    # -- reading -------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        return self.DeltaTable.isDeltaTable(self.spark, path)

    def read(self, path: str, version: int | None, timestamp: datetime | None) -> DataFrame:
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if timestamp is not None:
            reader = reader.option("timestampAsOf", timestamp.isoformat(sep=" "))
        try:
            df = reader.load(path)  # resolves the snapshot: a version out of range fails here
        except Exception as error:
            when = f"version {version}" if version is not None else f"timestamp {timestamp}"
            raise TableError(f"{path}: cannot load {when}: {describe(error)}") from error
        return df

    def files(self, path: str, version: int | None) -> list[str]:
        return list(self.read(path, version, None).inputFiles())

    def version(self, path: str) -> int:
        return self._snapshot(path).version()

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

    def txn_version(self, path: str, app_id: str) -> int | None:
        found = self._snapshot(path).transactions().get(app_id)
        return found.get() if found.isDefined() else None

    def _snapshot(self, path: str):
        """The table's latest snapshot, freshly read from the log (delta-spark's JVM API)."""
        log = self.spark.sparkContext._jvm.org.apache.spark.sql.delta.DeltaLog.forTable(
            self.spark._jsparkSession, path
        )
        return log.update(*(getattr(log, f"update$default${i}")() for i in (1, 2, 3)))

    # -- writing -------------------------------------------------------------------------

    def write(
        self,
        df: DataFrame,
        path: str,
        mode: WriteMode,
        partition_by: list[str] | None,
        evolve_schema: bool,
        txn: Txn | None = None,
        replace_schema: bool = False,
    ) -> WriteResult:
        check_storable(df.schema, path)
        new_fields = []
        existed = self.exists(path)
        if existed:
            table = self.DeltaTable.forPath(self.spark, path)  # one snapshot for both checks
            current = list(table.detail().first()["partitionColumns"])
            if partition_by is not None and list(partition_by) != current:
                raise TableError(
                    f"{path}: partitioned by {current}, the write asks for "
                    f"{partition_by}; a table's partitioning cannot change"
                )
            partition_by = current if replace_schema else None  # the table's own
            if not replace_schema:
                df, new_fields = align_to_table(df, table.toDF().schema, evolve_schema, path)
        elif partition_by:
            missing = [c for c in partition_by if c not in df.columns]
            if missing:
                raise TableError(f"{path}: partition columns {missing} are not in the data")
        write_id = uuid.uuid4().hex
        writer = (
            df.write.format("delta")
            .mode(mode)
            .option("mergeSchema", str(bool(new_fields)).lower())
            .option("overwriteSchema", str(replace_schema).lower())
            .option("maxRecordsPerFile", self.config.max_records_per_file)
            .option("userMetadata", write_id)
        )
        if txn is not None:
            writer = writer.option("txnAppId", txn.app_id).option("txnVersion", txn.version)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                writer.save(path)
                break
            except Exception as error:
                translated = _translate(error, path)
                # A lost race of a blind append (a concurrent writer with the same transaction
                # among them, or the creator of the table) is run again: delta-spark then skips
                # a batch already committed, or appends on top of the winner.
                lost_race = isinstance(translated, ConcurrentWriteError) and mode == "append"
                if not lost_race or attempt == COMMIT_ATTEMPTS:
                    raise translated from error
                if not existed:
                    self._check_created_meanwhile(path, df)
        return self._result(path, write_id, txn)

    def _check_created_meanwhile(self, path: str, df: DataFrame) -> None:
        theirs = self.DeltaTable.forPath(self.spark, path).toDF().schema
        if [(f.name, f.dataType) for f in theirs] != [(f.name, f.dataType) for f in df.schema]:
            raise ConcurrentWriteError(
                f"{path}: another writer created the table meanwhile with a different schema; "
                "this write committed nothing, run it again"
            )

    def merge(self, df: DataFrame, path: str, keys: list[str]) -> WriteResult:
        table_schema = self.DeltaTable.forPath(self.spark, path).toDF().schema
        source, _ = align_to_table(df, table_schema, False, path)  # merge never evolves
        source = _refusing_duplicate_keys(source, keys)
        condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        write_id = uuid.uuid4().hex
        before = self.version(path)
        self.spark.conf.set(USER_METADATA, write_id)  # merge takes no writer options
        try:
            (
                self.DeltaTable.forPath(self.spark, path)
                .alias("t")
                .merge(source.alias("s"), condition)
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )
        except Exception as error:
            raise _translate(error, path) from error
        finally:
            self.spark.conf.unset(USER_METADATA)
        if self.version(path) == before:
            return WriteResult(path, before, 0)  # an empty source: delta-spark commits nothing
        return self._result(path, write_id)

    def compact(self, path: str, zorder: list[str]) -> WriteResult:
        before = self.version(path)
        write_id = uuid.uuid4().hex
        self.spark.conf.set(USER_METADATA, write_id)
        try:
            optimize = self.DeltaTable.forPath(self.spark, path).optimize()
            optimize.executeZOrderBy(*zorder) if zorder else optimize.executeCompaction()
        except Exception as error:
            raise _translate(error, path) from error
        finally:
            self.spark.conf.unset(USER_METADATA)
        if self.version(path) == before:
            return WriteResult(path, before, 0)  # nothing to compact: no new version
        return self._result(path, write_id)

    def vacuum(self, path: str, retention_hours: float) -> list[str]:
        self.spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        table = f"delta.`{path}`"
        hours = f"{retention_hours:g}"
        deleted = [r[0] for r in self.spark.sql(f"VACUUM {table} RETAIN {hours} HOURS DRY RUN").collect()]
        self.spark.sql(f"VACUUM {table} RETAIN {hours} HOURS").collect()
        return [_within(uri, path) for uri in deleted]

    def _result(self, path: str, write_id: str, txn: Txn | None = None) -> WriteResult:
        """The commit carrying ``write_id``, as the layer's result; a write with a transaction
        that delta-spark skipped (already committed) made none."""
        history = self.DeltaTable.forPath(self.spark, path).history
        for frame in (history(HISTORY_SEARCH), history()):
            mine = frame.filter(frame.userMetadata == write_id).collect()
            if mine:
                break
        else:
            if txn is not None:
                return WriteResult(path, self.version(path), 0, skipped=True)
            raise TableError(f"{path}: committed, but the commit {write_id} is not in the table's history")
        commit = mine[0]
        metrics = {k: int(v) for k, v in (commit["operationMetrics"] or {}).items() if v.isdigit()}
        if commit["operation"] == "MERGE":
            # Each source row updates or inserts one (its keys are unique); numSourceRows is 0
            # when delta-spark runs an insert-only merge.
            updated, inserted = (
                metrics.get("numTargetRowsUpdated", 0),
                metrics.get("numTargetRowsInserted", 0),
            )
            return WriteResult(
                path,
                commit["version"],
                updated + inserted,
                metrics.get("numTargetFilesAdded", 0),
                metrics.get("numTargetFilesRemoved", 0),
                {"rows_updated": updated, "rows_inserted": inserted},
            )
        if commit["operation"] == "OPTIMIZE":
            added, removed = metrics.get("numAddedFiles", 0), metrics.get("numRemovedFiles", 0)
            return WriteResult(path, commit["version"], 0, added, removed)
        return WriteResult(
            path,
            commit["version"],
            metrics.get("numOutputRows", 0),
            metrics.get("numFiles", 0),
            metrics.get("numRemovedFiles", 0),
        )


def _refusing_duplicate_keys(source: DataFrame, keys: list[str]) -> DataFrame:
    """``source``, failing the merge that reads it if a key has several rows. delta-spark itself
    refuses only duplicates that match a target row, and a check before the merge would read the
    source outside the merge's transaction; this one runs as the merge materializes its source."""
    per_key = F.count(F.lit(1)).over(Window.partitionBy(*keys))
    key = F.to_json(F.struct(*keys))
    guard = F.when(per_key > 1, F.raise_error(F.concat(F.lit(f"{DUPLICATE_KEYS} "), key)))
    return (
        source.withColumn("_duplicate_key", guard)
        .filter(F.col("_duplicate_key").isNull())
        .drop("_duplicate_key")
    )


def _translate(error: Exception, path: str) -> TableError:
    """delta-spark's and Spark's errors as the layer's, in one line."""
    from delta.exceptions import DeltaConcurrentModificationException  # when py4j converts it

    text = describe(error)
    if DUPLICATE_KEYS in text:
        key = text[text.index(DUPLICATE_KEYS) + len(DUPLICATE_KEYS) :].split(" SQLSTATE")[0].strip()
        return TableError(f"{path}: {DUPLICATE_KEYS} {key}; deduplicate the source first")
    if isinstance(error, DeltaConcurrentModificationException) or LOST_RACE.search(str(error)):
        return ConcurrentWriteError(
            f"{path}: another writer committed a conflicting change first ({text}); this write left "
            "the table as the other made it, run it again"
        )
    if "DELTA_FAILED_TO_MERGE_FIELDS" in text or "schema mismatch" in text.lower():
        return SchemaMismatchError(f"{path}: {text}")
    return TableError(f"{path}: the write failed before its commit, so the table is unchanged: {text}")


def _within(uri: str, table_path: str) -> str:
    """``uri`` relative to the table, as rs reports it; as given if it lies outside."""
    try:
        return relative_to_table(uri, table_path)
    except ValueError:
        return uri
