"""Delta tables without Delta jars: delta-rs keeps the log, Spark moves the data.

A write goes in three steps, so a failure at any point leaves the table at its previous version:

1. Spark writes parquet in parallel into ``<table>/_staging/<write id>/`` (Spark and Delta
   readers skip folders starting with ``_``);
2. each file is renamed into the table folder (``col=value/`` partition folders kept);
3. one delta-rs transaction commits the Add (and, for overwrite, merge and compaction, Remove)
   actions. Files from a write that never committed are not in the log: readers never see them,
   and ``vacuum`` deletes them.

Concurrent writers: a blind append that loses the race to the log is committed again on the
winner's version (appends read nothing, so any order is serializable), as is a write that
finds the table created by another writer meanwhile; an overwrite, merge or compaction that
loses raises ``ConcurrentWriteError`` and the table keeps the winner's version.

Reads hand Spark the snapshot's own file list (never a folder listing), so files a version has
logically removed are never read. The driver handles file lists and parquet footers, never rows.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema, Transaction
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from deepspark.config import TablesConfig
from deepspark.errors import describe
from deepspark.tables.errors import ConcurrentWriteError, TableError
from deepspark.tables.schema import (
    align_to_table,
    check_storable,
    delta_schema_json,
    spark_schema_from_delta,
)
from deepspark.tables.types import (
    COMMIT_ATTEMPTS,
    DUPLICATE_KEYS,
    TABLE_PROPERTIES,
    Txn,
    WriteMode,
    WriteResult,
    hadoop_uri,
    relative_to_table,
)

log = logging.getLogger(__name__)

STAGING = "_staging"
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
# Reader features whose data this engine would misread by scanning files directly.
UNREADABLE_FEATURES = {"deletionVectors", "columnMapping"}
WRITE_ID = "deepspark.write_id"  # in each commit's commitInfo


class DeltaRsEngine:
    name = "rs"

    def __init__(self, spark: SparkSession, config: TablesConfig):
        self.spark = spark
        self.config = config

    # -- reading -------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        return DeltaTable.is_deltatable(path)

    def read(self, path: str, version: int | None, timestamp: datetime | None) -> DataFrame:
        table = self._open(path, version, timestamp)
        return self._scan(table, path)

    def _open(self, path: str, version: int | None = None, timestamp: datetime | None = None):
        try:
            table = DeltaTable(path, version=version)
            if timestamp is not None:
                aware = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
                table.load_as_version(aware)
        except TableNotFoundError as error:
            raise TableError(f"no Delta table at {path}: {error}") from error
        except DeltaError as error:
            when = f"version {version}" if version is not None else f"timestamp {timestamp}"
            raise TableError(f"{path}: cannot load {when}: {error}") from error
        features = set(table.protocol().reader_features or [])
        if features & UNREADABLE_FEATURES:
            raise TableError(
                f"{path} uses Delta reader features {sorted(features & UNREADABLE_FEATURES)} that "
                "the offline engine cannot read; use tables.engine=spark with delta-spark"
            )
        return table

    def _scan(self, table: DeltaTable, path: str, with_file: bool = False) -> DataFrame:
        schema = spark_schema_from_delta(table.schema().to_json())
        uris = [hadoop_uri(uri) for uri in table.file_uris()]
        if not uris:
            df = self.spark.createDataFrame([], schema)
            return df.withColumn("_file", F.lit(None).cast("string")) if with_file else df
        df = self.spark.read.schema(schema).option("basePath", hadoop_uri(path)).parquet(*uris)
        columns = [F.col(f"`{name}`") for name in schema.fieldNames()]
        if with_file:
            columns.append(F.input_file_name().alias("_file"))
        return df.select(*columns)

    def files(self, path: str, version: int | None) -> list[str]:
        return [hadoop_uri(uri) for uri in self._open(path, version).file_uris()]

    def version(self, path: str) -> int:
        return self._open(path).version()

    def txn_version(self, path: str, app_id: str) -> int | None:
        return self._open(path).transaction_version(app_id)

    def history(self, path: str) -> list[dict]:
        return [
            {
                "version": entry.get("version"),
                "timestamp": entry.get("timestamp"),
                "operation": entry.get("operation"),
                "parameters": entry.get("operationParameters", {}),
                "engine": entry.get("engineInfo") or entry.get("clientVersion"),
            }
            for entry in self._open(path).history()
        ]

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
        table = self._open(path) if self.exists(path) else None
        if table is not None and _committed(table, txn):
            return WriteResult(path, table.version(), 0, skipped=True)
        new_fields = []
        if table is not None:
            current = table.metadata().partition_columns
            if partition_by is not None and list(partition_by) != list(current):
                raise TableError(
                    f"{path}: partitioned by {current}, the write asks for "
                    f"{partition_by}; a table's partitioning cannot change"
                )
            partition_by = list(current)
            if not replace_schema:
                table_schema = spark_schema_from_delta(table.schema().to_json())
                df, new_fields = align_to_table(df, table_schema, evolve_schema, path)
        partition_by = list(partition_by or [])
        missing = [c for c in partition_by if c not in df.columns]
        if missing:
            raise TableError(f"{path}: partition columns {missing} are not in the data")

        adds = self._stage(df, path, partition_by)
        rows = sum(json.loads(a.stats)["numRecords"] for a in adds)
        if table is None:
            try:
                create_table_with_add_actions(
                    path,
                    _delta_schema(df.schema),
                    adds,
                    mode="error",
                    partition_by=partition_by or None,
                    configuration=TABLE_PROPERTIES,
                    commit_properties=CommitProperties(app_transactions=_transactions(txn)),
                )
                return WriteResult(path, 0, rows, len(adds))
            except DeltaError as error:
                if not self.exists(path):
                    raise TableError(f"{path}: creating the table failed: {describe(error)}") from error
            table = self._created_meanwhile(path, df, partition_by)
            if _committed(table, txn):
                _unstage(adds, path)
                return WriteResult(path, table.version(), 0, skipped=True)
        if not adds and mode == "append" and not new_fields and txn is None:
            return WriteResult(path, table.version(), 0)  # nothing to add: no empty version
        if new_fields:
            # delta-rs commits Add actions without touching the schema, so widen it first.
            table.alter.add_columns([_delta_field(f) for f in new_fields])
            table = self._open(path)
        removed = len(table.file_uris()) if mode == "overwrite" else 0
        schema = delta_schema_json(df.schema) if replace_schema else None
        version = self._commit(table, adds, [], mode, path, txn, schema)
        if version is None:  # another writer committed this transaction first
            _unstage(adds, path)
            return WriteResult(path, self._open(path).version(), 0, skipped=True)
        return WriteResult(path, version, rows, len(adds), removed)

    def merge(self, df: DataFrame, path: str, keys: list[str]) -> WriteResult:
        """Copy-on-write upsert: rewrite only the files holding matched keys, in one commit."""
        table = self._open(path)
        table_schema = spark_schema_from_delta(table.schema().to_json())
        source, _ = align_to_table(df, table_schema, False, path)  # merge never evolves
        duplicated = source.groupBy(*keys).count().filter("count > 1").limit(1).collect()
        if duplicated:
            key = {k: duplicated[0][k] for k in keys}
            raise TableError(f"{path}: {DUPLICATE_KEYS} {key}; deduplicate the source first")

        target = self._scan(table, path, with_file=True)
        source_keys = source.select(*keys)
        touched = [
            row["_file"]
            for row in target.join(source_keys, keys, "left_semi").select("_file").distinct().collect()
        ]
        kept = target.filter(F.col("_file").isin(touched)).join(source_keys, keys, "left_anti").drop("_file")
        rows_updated = (
            target.filter(F.col("_file").isin(touched)).join(source_keys, keys, "left_semi").count()
            if touched
            else 0
        )
        rows_source = source.count()
        partition_by = list(table.metadata().partition_columns)
        adds = self._stage(kept.unionByName(source), path, partition_by)
        removes = self._removes(table, path, set(touched))
        version = self._commit(table, adds, removes, "append", path)
        return WriteResult(
            path,
            version,
            rows_source,
            len(adds),
            len(removes),
            {"rows_updated": rows_updated, "rows_inserted": rows_source - rows_updated},
        )

    def compact(self, path: str, zorder: list[str]) -> WriteResult:
        table = self._open(path)
        actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
        partition_by = list(table.metadata().partition_columns)
        rows = sum(a["num_records"] or 0 for a in actions)
        groups = {tuple(a.get(f"partition.{c}") for c in partition_by) for a in actions}
        if len(actions) <= len(groups) and not zorder:
            return WriteResult(path, table.version(), 0)
        files_per_group = max(1, -(-rows // self.config.max_records_per_file // len(groups)))
        df = self._scan(table, path)
        df = (
            df.repartition(len(groups) * files_per_group, *partition_by)
            if partition_by
            else df.repartition(files_per_group)
        )
        if zorder:
            df = df.sortWithinPartitions(*zorder)
        adds = [_no_data_change(a) for a in self._stage(df, path, partition_by)]
        removes = self._removes(table, path, None, data_change=False)
        version = self._commit(table, adds, removes, "append", path)
        return WriteResult(path, version, 0, len(adds), len(removes))

    def vacuum(self, path: str, retention_hours: float) -> list[str]:
        table = self._open(path)
        deleted = table.vacuum(
            retention_hours=int(retention_hours),
            dry_run=False,
            enforce_retention_duration=False,
            full=True,
        )
        staging = Path(path) / STAGING
        if staging.is_dir():
            cutoff = time.time() - retention_hours * 3600
            for leftover in staging.iterdir():
                if leftover.stat().st_mtime <= cutoff:
                    shutil.rmtree(leftover, ignore_errors=True)
                    deleted.append(str(leftover.relative_to(path)))
        return deleted

    # -- the three write steps -------------------------------------------------------------

    def _stage(self, df: DataFrame, path: str, partition_by: list[str]) -> list[AddAction]:
        """Steps 1 and 2: Spark writes parquet; files move into the table; Add actions."""
        write_id = uuid.uuid4().hex
        staging = Path(path) / STAGING / write_id
        writer = df.write.mode("errorifexists").option("maxRecordsPerFile", self.config.max_records_per_file)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        adds = []
        try:
            # Hadoop reports a read-only or missing folder only as "Mkdirs failed"; the OS says why.
            staging.mkdir(parents=True)
            staging.rmdir()
            writer.parquet(hadoop_uri(str(staging)))
            for file in sorted(staging.rglob("*.parquet")):
                num_records = pq.read_metadata(file).num_rows  # the footer only
                if num_records == 0:
                    continue  # Spark writes a file for every empty task; the log needs none
                relative = file.relative_to(staging)
                destination = Path(path) / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                os.replace(file, destination)
                adds.append(_add_action(destination, relative, num_records))
        except Exception as error:  # Spark's, or the file system's (full, read-only)
            for moved in adds:
                (Path(path) / moved.path).unlink(missing_ok=True)
            raise TableError(
                f"{path}: the write failed before its commit, so the table is unchanged: {describe(error)}"
            ) from error
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return adds

    def _commit(
        self,
        table: DeltaTable,
        adds,
        removes,
        mode: str,
        path: str,
        txn: Txn | None = None,
        schema_json: str | None = None,
    ) -> int | None:
        """Step 3: one atomic delta-rs commit (with ``schema_json``, the table's new schema);
        returns the version it made, or None when another writer committed ``txn`` first."""
        schema_json = schema_json or table.schema().to_json()
        blind_append = mode == "append" and not removes
        # The commit is found again by this id: the version it made, not a later writer's.
        # With a transaction, delta-rs must not commit again on top of a winner by itself (its
        # conflict check lets blind appends through): each attempt re-reads the transaction.
        marker = CommitProperties(
            custom_metadata={WRITE_ID: uuid.uuid4().hex},
            app_transactions=_transactions(txn),
            max_commit_retries=0 if txn is not None else None,
        )
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                table.create_write_transaction(
                    [*adds, *removes],
                    mode=mode,
                    schema=Schema.from_json(schema_json),
                    partition_by=list(table.metadata().partition_columns) or None,
                    commit_properties=marker,
                )
                break
            except CommitFailedError as error:
                if not blind_append or attempt == COMMIT_ATTEMPTS:
                    raise ConcurrentWriteError(
                        f"{path}: another writer committed a conflicting change first "
                        f"({_first_line(error)}); this write left the table as the other made "
                        "it, run it again"
                    ) from error
                table = self._open(path)
                if _committed(table, txn):
                    return None
                if table.schema().to_json() != schema_json:
                    raise ConcurrentWriteError(
                        f"{path}: another writer changed the schema while this append ran; "
                        "the table is unchanged by this append, run it again"
                    ) from error
                log.info("%s: append lost the race to version %d, committing again", path, table.version())
            except (DeltaError, OSError) as error:
                raise TableError(
                    f"{path}: the commit failed, so the table stays at version {table.version()}: "
                    f"{describe(error)}"
                ) from error
        return self._version_made_by(path, marker.custom_metadata[WRITE_ID])

    def _version_made_by(self, path: str, write_id: str) -> int:
        """The version of the commit carrying ``write_id`` (newest first: it is recent)."""
        for limit in (2 * COMMIT_ATTEMPTS, None):
            for entry in DeltaTable(path).history(limit):
                if entry.get(WRITE_ID) == write_id:
                    return entry["version"]
        raise TableError(f"{path}: committed, but the commit {write_id} is not in the table's history")

    def _created_meanwhile(self, path: str, df: DataFrame, partition_by: list[str]) -> DeltaTable:
        """The table another writer created while this one staged its files, if it has the same
        schema and partitioning (this write then commits on top of it)."""
        table = self._open(path)
        theirs = spark_schema_from_delta(table.schema().to_json())
        if theirs != spark_schema_from_delta(delta_schema_json(df.schema)) or list(
            table.metadata().partition_columns
        ) != list(partition_by):
            raise ConcurrentWriteError(
                f"{path}: another writer created the table meanwhile with a different schema or "
                "partitioning; this write committed nothing, run it again"
            )
        log.info("%s: created by another writer meanwhile; committing on top of it", path)
        return table

    def _removes(
        self, table: DeltaTable, path: str, only: set[str] | None, data_change: bool = True
    ) -> list[RemoveAction]:
        now = int(time.time() * 1000)
        partition_by = list(table.metadata().partition_columns)
        wanted = None if only is None else {relative_to_table(uri, path) for uri in only}
        removes = []
        for action in pa.table(table.get_add_actions(flatten=True)).to_pylist():
            if wanted is not None and action["path"] not in wanted:
                continue
            values = {c: _partition_text(action.get(f"partition.{c}")) for c in partition_by}
            removes.append(RemoveAction(action["path"], data_change, now, action["size_bytes"], values))
        return removes


def _unstage(adds: list[AddAction], path: str) -> None:
    """Delete the files of a write that will not be committed (no version names them)."""
    for add in adds:
        (Path(path) / add.path).unlink(missing_ok=True)


def _transactions(txn: Txn | None) -> list[Transaction] | None:
    return [Transaction(txn.app_id, txn.version)] if txn is not None else None


def _committed(table: DeltaTable, txn: Txn | None) -> bool:
    """True when ``table`` already holds ``txn`` (or a later version of its application)."""
    if txn is None:
        return False
    done = table.transaction_version(txn.app_id)
    return done is not None and done >= txn.version


def _add_action(file: Path, relative: Path, num_records: int) -> AddAction:
    partition_values = {}
    for part in relative.parent.parts:
        key, _, value = part.partition("=")
        value = unquote(value)
        partition_values[unquote(key)] = None if value == HIVE_NULL else value
    stat = file.stat()
    return AddAction(
        path=relative.as_posix(),
        size=stat.st_size,
        partition_values=partition_values,
        modification_time=int(stat.st_mtime * 1000),
        data_change=True,
        stats=json.dumps({"numRecords": num_records}),
    )


def _no_data_change(action: AddAction) -> AddAction:
    return AddAction(
        action.path, action.size, action.partition_values, action.modification_time, False, action.stats
    )


def _delta_schema(schema: StructType) -> Schema:
    return Schema.from_json(delta_schema_json(schema))


def _delta_field(field):
    return _delta_schema(StructType([field])).fields[0]


def _partition_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return str(value)


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
