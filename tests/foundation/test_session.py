"""The session factory and the Delta engine selection."""

from __future__ import annotations

import pytest
from deepspark.session import get_spark, spark_settings
from deepspark.tables import TableError, Tables
from deepspark.tables.api import choose_engine, delta_spark_on_classpath


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
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT")
    assert spark_settings(base_config, tmp_path)["spark.master"] == "local[2]"


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
    ("requested", "available", "chosen"),
    [("auto", True, "spark"), ("auto", False, "rs"), ("rs", True, "rs"), ("spark", True, "spark")],
)
def test_engine_choice(requested, available, chosen):
    assert choose_engine(requested, available) == chosen


def test_asking_for_delta_spark_without_its_jars_says_how_to_get_them():
    with pytest.raises(TableError, match="--packages io.delta:delta-spark_2.13"):
        choose_engine("spark", False)


def test_this_offline_session_has_no_delta_jars_and_gets_the_rs_engine(spark, config):
    assert delta_spark_on_classpath(spark) is False
    assert Tables(spark, config).engine.name == "rs"
    spark_cfg = config.model_copy(update={"tables": config.tables.model_copy(update={"engine": "spark"})})
    with pytest.raises(TableError, match="not on the JVM classpath"):
        Tables(spark, spark_cfg)
