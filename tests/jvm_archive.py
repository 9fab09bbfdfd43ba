"""Write a class-data archive (AppCDS) for the JVMs the tests start: ``tests/run.sh`` runs this
script once with ``-XX:ArchiveClassesAtExit=PATH`` in SPARK_SUBMIT_OPTS, then starts every
test JVM with ``-XX:SharedArchiveFile=PATH``. The classes this session loads (Spark SQL,
delta-spark, a shuffle) are then mapped from the archive instead of being read, parsed and
verified again by each JVM.

The JVM writes the archive when it exits, after this script's Python has stopped the session:
the script waits for it, so the archive is whole when the script returns.
"""

from __future__ import annotations

import tempfile

from deepspark.config import load_config
from deepspark.session import get_spark
from pyspark import SparkContext


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="deepspark-jvm-archive-") as folder:
        overrides = [f"spark.scratch_dir={folder}/spark", "spark.master=local[2]"]
        spark = get_spark(load_config(env="local", overrides=overrides, environ={}))
        table = f"{folder}/table"
        spark.range(100).selectExpr("id", "id % 7 AS k").write.format("delta").save(table)
        spark.read.format("delta").load(table).groupBy("k").count().collect()
        jvm = SparkContext._gateway.proc  # spark-submit, which execs the JVM
        spark.stop()
        jvm.stdin.close()  # the JVM exits on end of input, writing the archive first
        jvm.wait()


if __name__ == "__main__":
    main()
