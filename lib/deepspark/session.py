"""The one place a SparkSession is built.

Local mode by default (``local[*]`` bound to 127.0.0.1, scratch folders under a temporary or
configured folder, UI off unless asked for). Under spark-submit the master, deploy mode and
resources come from spark-submit and are left alone. Either way the settings every stage
relies on are applied here: UTC session time zone, microsecond parquet timestamps (readable by
delta-rs and delta-spark alike), adaptive execution, Arrow transfers. In local mode the session
also loads the installed delta-spark jars and its extension, so either Delta engine can run.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from pyspark.sql import SparkSession

from deepspark.config import Config

log = logging.getLogger(__name__)

# Settings that make tables and results the same on a laptop and on a cluster.
PORTABLE_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.sources.partitionOverwriteMode": "static",
    # No _SUCCESS markers inside Delta table folders.
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.hadoop.parquet.summary.metadata.level": "NONE",
    # PySpark 4's call-site capture: about ten more Py4J round trips and a stack walk on every
    # DataFrame and functions call (F.col 2.9 ms against 0.9), for query context that
    # errors.describe drops from the one-line error anyway.
    "spark.python.sql.dataFrameDebugging.enabled": "false",
}

# delta-spark's jars, as deploy/env/install.sh puts them into the environment (jars.lock).
DELTA_JARS_DIR = Path(sys.prefix) / "share" / "deepspark" / "jars"
DELTA_SESSION = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def delta_jars(folder: Path = DELTA_JARS_DIR) -> list[Path]:
    """The installed delta-spark jars (none in an environment installed without them)."""
    return sorted(folder.glob("*.jar"))


def launched_by_spark_submit() -> bool:
    """True when this Python process was started by spark-submit (the JVM is already up)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def delta_submitted() -> bool:
    """True when spark-submit was given delta-spark (``--jars`` or ``--packages``): the session
    then needs Delta's extension and catalog, whatever the conf overlay."""
    from pyspark import SparkConf, SparkContext

    try:
        SparkContext._ensure_initialized()  # the gateway to spark-submit's JVM, which the session reuses
    except Exception:  # no JVM to ask: nothing was submitted with the jars
        return False
    conf = SparkConf()  # spark-submit's settings
    return any("delta-spark" in (conf.get(key) or "") for key in ("spark.jars", "spark.jars.packages"))


def spark_settings(config: Config, scratch: Path) -> dict[str, str]:
    """The resolved Spark settings for ``config``; the master only when not under spark-submit."""
    spark = config.spark
    settings = dict(PORTABLE_SETTINGS)
    settings["spark.sql.shuffle.partitions"] = str(spark.shuffle_partitions)
    settings["spark.ui.enabled"] = str(spark.ui_enabled).lower()
    # Under spark-submit too (session settings): parallel file listings (delta-spark's VACUUM) as
    # wide as the shuffles, not Spark's 10,000 tasks (92 s against 12 s for a small table's vacuum
    # here), and delta-spark's snapshot rebuilt in as many tasks, not 50 per table read.
    settings["spark.sql.sources.parallelPartitionDiscovery.parallelism"] = str(spark.shuffle_partitions)
    settings["spark.databricks.delta.snapshotPartitions"] = str(spark.shuffle_partitions)
    if not launched_by_spark_submit():
        settings.update(
            {
                "spark.app.name": spark.app_name,  # under spark-submit, its --name wins
                "spark.master": spark.master or "local[*]",
                "spark.driver.bindAddress": spark.bind_address,
                "spark.driver.host": spark.bind_address,
                "spark.driver.memory": spark.driver_memory,
                "spark.local.dir": str(scratch / "local"),
                "spark.sql.warehouse.dir": str(scratch / "warehouse"),
                "spark.driver.extraJavaOptions": f"-Dderby.system.home={scratch / 'derby'}",
                "spark.ui.showConsoleProgress": "false",
            }
        )
        jars = delta_jars()  # loading them costs no measurable start-up time; both engines can run
        if jars:
            settings["spark.jars"] = ",".join(str(jar) for jar in jars)
            settings.update(DELTA_SESSION)
    elif delta_submitted():  # deploy/submit.sh's --jars, or --packages
        settings.update(DELTA_SESSION)
    if spark.executor_gpus:
        settings["spark.executor.resource.gpu.amount"] = str(spark.executor_gpus)
        settings["spark.task.resource.gpu.amount"] = "1"  # a Horovod rank per GPU
        if spark.gpu_discovery_script:
            settings["spark.executor.resource.gpu.discoveryScript"] = spark.gpu_discovery_script
    settings.update(spark.conf)
    return settings


def get_spark(config: Config) -> SparkSession:
    """Return the active SparkSession, or build it from ``config``."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    scratch = Path(config.spark.scratch_dir or tempfile.mkdtemp(prefix="deepspark-spark-"))
    scratch.mkdir(parents=True, exist_ok=True)
    settings = spark_settings(config, scratch)
    if not launched_by_spark_submit():
        # The JVM binds its RPC endpoints by this variable before any setting is read.
        os.environ.setdefault("SPARK_LOCAL_IP", config.spark.bind_address)
        # Python workers run in this interpreter (its venv has pyarrow, pandas, ...).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(config.spark.log_level)
    log.info(
        "spark session: master=%s version=%s scratch=%s",
        session.sparkContext.master,
        session.version,
        scratch,
    )
    log.info("resolved config (secrets redacted): %s", json.dumps(config.redacted(), default=str))
    return session
