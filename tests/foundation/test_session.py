"""The session factory and the Delta engine selection."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from deepspark.session import delta_jars, get_spark, spark_settings
from deepspark.tables import TableError, Tables
from deepspark.tables.api import choose_engine, delta_spark_on_classpath

from tests.conftest import on_engine

REPO = Path(__file__).resolve().parents[2]


def test_local_session_is_bound_to_loopback_with_scratch_in_the_configured_folder(spark, base_config):
    conf = spark.sparkContext.getConf()
    assert spark.sparkContext.master == "local[2]"
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert conf.get("spark.ui.enabled") == "false"
    assert conf.get("spark.local.dir").startswith(str(base_config.spark.scratch_dir))
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.parquet.outputTimestampType") == "TIMESTAMP_MICROS"


def test_the_factory_returns_the_active_session(spark, base_config):
    assert get_spark(base_config) is spark


def test_under_spark_submit_the_master_is_left_to_spark_submit(base_config, tmp_path, monkeypatch):
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "12345")
    settings = spark_settings(base_config, tmp_path)
    assert "spark.master" not in settings and "spark.local.dir" not in settings
    # delta-spark's snapshot and file listings as wide as the shuffles on a cluster too (not 50
    # and 10,000 tasks for each small table)
    assert settings["spark.databricks.delta.snapshotPartitions"] == "2"
    assert settings["spark.sql.sources.parallelPartitionDiscovery.parallelism"] == "2"
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT")
    assert spark_settings(base_config, tmp_path)["spark.master"] == "local[2]"


def test_pysparks_call_site_capture_is_off_here_and_under_spark_submit(
    spark, base_config, tmp_path, monkeypatch
):
    from pyspark.errors.utils import is_debugging_enabled

    assert spark.conf.get("spark.python.sql.dataFrameDebugging.enabled") == "false"
    assert not is_debugging_enabled()  # what PySpark read, once for the process
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "12345")
    assert spark_settings(base_config, tmp_path)["spark.python.sql.dataFrameDebugging.enabled"] == "false"


def test_extra_spark_conf_passes_through(base_config, tmp_path):
    config = base_config.model_copy(
        update={
            "spark": base_config.spark.model_copy(
                update={"conf": {"spark.sql.shuffle.partitions": "3", "spark.x": "y"}}
            )
        }
    )
    settings = spark_settings(config, tmp_path)
    assert settings["spark.sql.shuffle.partitions"] == "3" and settings["spark.x"] == "y"


@pytest.mark.parametrize(
    ("requested", "available", "local", "chosen"),
    [
        ("auto", True, False, "spark"),
        ("auto", True, True, "rs"),
        ("auto", False, False, "rs"),
        ("rs", True, False, "rs"),
        ("spark", True, True, "spark"),
    ],
)
def test_engine_choice(requested, available, local, chosen):
    assert choose_engine(requested, available, local) == chosen


def test_asking_for_delta_spark_without_its_jars_says_how_to_get_them():
    with pytest.raises(TableError, match="deploy/submit.sh .* --packages io.delta:delta-spark_2.13:4.0.1"):
        choose_engine("spark", False)


def test_the_local_session_loads_the_installed_delta_jars_and_auto_picks_rs(spark, config):
    jars = delta_jars()
    assert sorted(jar.name for jar in jars) == ["delta-spark_2.13-4.0.1.jar", "delta-storage-4.0.1.jar"]
    assert spark.sparkContext.getConf().get("spark.jars") == ",".join(str(jar) for jar in jars)
    assert spark.conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    assert delta_spark_on_classpath(spark) is True
    assert Tables(spark, config).engine.name == "rs"  # auto, in local mode
    assert Tables(spark, on_engine(config, "spark")).engine.name == "spark"


def test_the_installed_jars_match_the_lock_and_the_python_package():
    import importlib.metadata

    lock = (REPO / "deploy" / "env" / "jars.lock").read_text().splitlines()
    pinned = dict(line.split() for line in lock if line.strip() and not line.startswith("#"))
    version = importlib.metadata.version("delta-spark")
    assert set(pinned) == {f"io.delta:delta-spark_2.13:{version}", f"io.delta:delta-storage:{version}"}
    for jar in delta_jars():
        coordinate = next(c for c in pinned if jar.name == f"{c.split(':')[1]}-{c.split(':')[2]}.jar")
        assert hashlib.sha256(jar.read_bytes()).hexdigest() == pinned[coordinate]
