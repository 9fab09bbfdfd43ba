"""The one way to reach Delta tables: ``Tables``, which hides which Delta engine is in use.

Tables are named ``layer.name`` (``bronze.customers``, ``silver.orders``, ``gold.features``)
and live at ``<data_root>/tables/<layer>/<name>``. Two engines share the Delta protocol on disk:

* ``spark``: delta-spark, when ``io.delta`` classes are on the JVM classpath (clusters, and
  local mode: the session loads the jars deploy/env/install.sh put into the environment);
* ``rs``: delta-rs (``deltalake``) keeps the transaction log while Spark's own parquet reader
  and writer move the data in parallel (a JVM without the Delta jars).

``tables.engine`` in conf picks one (``auto`` by default). Tables either writes are read,
merged, time-travelled and vacuumed by the other (tests/tables).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from deepspark.config import Config
from deepspark.tables.errors import SchemaMismatchError, TableError, TableNotFoundError
from deepspark.tables.rs_engine import DeltaRsEngine
from deepspark.tables.spark_engine import DeltaSparkEngine
from deepspark.tables.types import Engine, Txn, WriteMode, WriteResult

log = logging.getLogger(__name__)

TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
DELTA_SPARK_CLASS = "io.delta.tables.DeltaTable"


def delta_spark_on_classpath(spark: SparkSession) -> bool:
    """True when the JVM can load delta-spark's classes (``--packages io.delta:...``)."""
    try:
        jvm = spark.sparkContext._jvm
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(DELTA_SPARK_CLASS, False, loader)
        return True
    except Exception:  # py4j wraps ClassNotFoundException; Spark Connect has no JVM here
        return False


def choose_engine(requested: str, delta_spark_available: bool, local: bool = False) -> str:
    """Resolve ``tables.engine`` (auto|spark|rs) against what the session offers: ``auto`` is
    delta-spark on a cluster when its classes load, and rs in local mode, where it is faster
    (bench/tables_overhead.py: write, read and merge) and needs no JVM round trips."""
    if requested == "auto":
        return "spark" if delta_spark_available and not local else "rs"
    if requested == "spark" and not delta_spark_available:
        raise TableError(
            "tables.engine is 'spark' but delta-spark's classes are not on the JVM classpath; "
            "submit with deploy/submit.sh (it ships the jars of deploy/env/jars.lock) or "
            "--packages io.delta:delta-spark_2.13:4.0.1, or set tables.engine to 'auto' or 'rs'"
        )
    if requested not in ("spark", "rs"):
        raise TableError(f"tables.engine: expected auto, spark or rs, got {requested!r}")
    return requested


class Tables:
    """Read, write, merge and maintain the project's Delta tables by name."""

    def __init__(self, spark: SparkSession, config: Config, engine: Engine | None = None):
        self.spark = spark
        self.root = Path(config.tables_root).resolve()
        self.config = config.tables
        self.engine = engine or self._make_engine(spark, config)
        log.info("delta engine: %s (tables under %s)", self.engine.name, self.root)

    @staticmethod
    def _make_engine(spark: SparkSession, config: Config) -> Engine:
        local = spark.sparkContext.master.startswith("local")
        name = choose_engine(config.tables.engine, delta_spark_on_classpath(spark), local)
        engine = DeltaSparkEngine if name == "spark" else DeltaRsEngine
        return engine(spark, config.tables)

    def path(self, name: str) -> str:
        if not TABLE_NAME.match(name):
            raise TableError(
                f"table name {name!r}: expected 'layer.name' in lower case, e.g. 'bronze.customers'"
            )
        layer, table = name.split(".")
        return str(self.root / layer / table)

    def exists(self, name: str) -> bool:
        return self.engine.exists(self.path(name))

    def read(self, name: str, version: int | None = None, timestamp: datetime | None = None) -> DataFrame:
        """The table at its latest version, or as of ``version`` / ``timestamp``."""
        if version is not None and timestamp is not None:
            raise TableError(f"{name}: give a version or a timestamp to travel to, not both")
        self._require(name)
        return self.engine.read(self.path(name), version, timestamp)

    def files(self, name: str, version: int | None = None) -> list[str]:
        """The data files of the table at ``version`` (default latest), as URIs: the snapshot's
        own list, never a folder listing, so files a later or earlier version removed are absent.
        For readers outside Spark (Petastorm, pyarrow)."""
        self._require(name)
        return sorted(self.engine.files(self.path(name), version))

    def write(
        self,
        df: DataFrame,
        name: str,
        mode: WriteMode = "append",
        partition_by: list[str] | None = None,
        evolve_schema: bool = False,
        txn: Txn | None = None,
        replace_schema: bool = False,
    ) -> WriteResult:
        """Append or overwrite atomically; new columns need ``evolve_schema=True``. With
        ``txn``, the write commits only if the table has not committed that transaction yet
        (``skipped`` in the result says it had): a batch is never written twice. An overwrite
        with ``replace_schema=True`` makes the data's columns and types the table's (a table
        built again from scratch); its partitioning stays."""
        if mode not in ("append", "overwrite"):
            raise TableError(f"{name}: write mode must be 'append' or 'overwrite', got {mode!r}")
        if replace_schema and mode != "overwrite":
            raise TableError(f"{name}: replace_schema needs mode 'overwrite', got {mode!r}")
        result = self.engine.write(
            df, self.path(name), mode, partition_by, evolve_schema, txn, replace_schema
        )
        return _named(result, name)

    def txn_version(self, name: str, app_id: str) -> int | None:
        """The last version of application ``app_id`` the table has committed, if any."""
        return self.engine.txn_version(self.path(name), app_id) if self.exists(name) else None

    def merge(self, df: DataFrame, name: str, keys: list[str]) -> WriteResult:
        """Upsert ``df`` on ``keys``: matching rows are replaced, new keys inserted. A source with
        several rows for one key is refused, naming the key (each engine checks it inside the
        merge, against the snapshot the merge started from)."""
        if not keys:
            raise TableError(f"{name}: merge needs at least one key column")
        missing = [k for k in keys if k not in df.columns]
        if missing:
            raise SchemaMismatchError(
                f"{name}: merge keys {missing} are not columns of the source ({', '.join(df.columns)})"
            )
        if not self.exists(name):
            return self.write(df, name)
        return _named(self.engine.merge(df, self.path(name), keys), name)

    def version(self, name: str) -> int:
        self._require(name)
        return self.engine.version(self.path(name))

    def history(self, name: str) -> list[dict]:
        """Commits, newest first: version, timestamp, operation, parameters."""
        self._require(name)
        return self.engine.history(self.path(name))

    def compact(self, name: str) -> WriteResult:
        """Rewrite small files into fewer large ones (no data change), clustered by the table's
        ``tables.zorder`` columns when the conf names any."""
        self._require(name)
        zorder = self.config.zorder.get(name, [])
        columns = self.read(name).columns if zorder else []
        missing = [c for c in zorder if c not in columns]
        if missing:
            raise TableError(f"tables.zorder.{name}: {missing} are not columns of {name}")
        return _named(self.engine.compact(self.path(name), zorder), name)

    def vacuum(self, name: str, retention_hours: float | None = None) -> list[str]:
        """Delete files no version within the retention period needs; returns them."""
        self._require(name)
        hours = self.config.vacuum_retention_hours if retention_hours is None else retention_hours
        return self.engine.vacuum(self.path(name), hours)

    def list(self) -> dict[str, int]:
        """Every table under the root with its current version."""
        found = {}
        for log_dir in sorted(self.root.glob("*/*/_delta_log")):
            name = f"{log_dir.parent.parent.name}.{log_dir.parent.name}"
            if TABLE_NAME.match(name):
                found[name] = self.engine.version(str(log_dir.parent))
        return found

    def _require(self, name: str) -> None:
        if not self.exists(name):
            raise TableNotFoundError(f"table {name} does not exist at {self.path(name)}")


def _named(result: WriteResult, name: str) -> WriteResult:
    return dataclasses.replace(result, table=name)
