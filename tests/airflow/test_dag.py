"""The Airflow DAG (deploy/airflow/dags/deepspark_daily.py), in Airflow's own environment.

Run by `make test` as `.airflow-venv/bin/pytest tests/airflow --confcutdir tests/airflow`: the
main environment has no Airflow, and this one has no deepspark (tasks call the deepspark
environment's spark-submit, as they would on a real Airflow worker).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.small_conf import REPO, write_small_conf

DAGS = REPO / "deploy" / "airflow" / "dags"
VENV = REPO / ".venv"
STAGES = ["ingest", "clean", "validate", "features", "kmeans", "rules", "trees", "train", "predict", "report"]


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    """A fresh Airflow home with a migrated SQLite database; the Spark connection in local mode.
    Set in this process's environment: dag.test() runs the tasks in this process."""
    home = tmp_path_factory.mktemp("airflow")
    settings = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_CONN_DEEPSPARK_SPARK": json.dumps({"conn_type": "spark", "host": "local[2]"}),
        "DEEPSPARK_SECRET_PII_HMAC_KEY": "airflow-test-key",
    }
    os.environ.update(settings)
    migrated = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return home


@pytest.fixture(scope="module")
def dag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.get_dag("deepspark_daily")


def test_the_dag_imports_with_the_stage_graph(dag):
    assert sorted(dag.task_ids) == sorted(STAGES)
    downstream = {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks}
    assert downstream == {
        "ingest": ["clean"],
        "clean": ["validate"],
        "validate": ["features"],
        "features": ["kmeans", "rules", "trees"],
        "kmeans": ["train"],
        "rules": ["train"],
        "trees": ["train"],
        "train": ["predict"],
        "predict": ["report"],
        "report": [],
    }
    assert dag.catchup is False and dag.max_active_runs == 1
    assert set(dag.params.keys()) == {"env", "conf_dir", "venv"}


def test_every_stage_is_a_spark_submit_with_back_off_and_the_gate_is_not_retried(dag):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    for task in dag.tasks:
        assert isinstance(task, SparkSubmitOperator), task.task_id
        assert task._conn_id == "deepspark_spark"  # the operator keeps no public name for it
        assert Path(task.application).is_file(), task.application
        expected = 0 if task.task_id == "validate" else 2
        assert task.retries == expected, task.task_id
        assert task.retry_exponential_backoff
    assert dag.get_task("kmeans").application_args[:2] == ["--part", "kmeans"]


def _land(conf_dir: Path) -> None:
    """The sample data into the conf's landing folder (`deepspark generate`)."""
    generated = subprocess.run(
        [str(VENV / "bin" / "deepspark"), "generate", "--conf-dir", str(conf_dir), "--env", "small"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert generated.returncode == 0, generated.stderr[-3000:]


def _run(dag, conf_dir: Path, mark_success: str | None = None):
    """One DAG run as a manual trigger (no logical date), every task a real spark-submit but those
    ``mark_success`` matches (marked successful, not run). Returns the DAG run and each task's
    final state."""
    run_conf = {"conf_dir": str(conf_dir), "env": "small"}
    dag_run = dag.test(logical_date=None, run_conf=run_conf, mark_success_pattern=mark_success)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    return dag_run, states


@pytest.fixture(scope="module")
def manual_run(dag, tmp_path_factory):
    """The suite's one whole DAG run: (its conf folder, the DAG run, each task's state)."""
    conf = write_small_conf(tmp_path_factory.mktemp("airflow") / "conf")
    _land(conf)
    return conf, *_run(dag, conf)


# With the whole DAG run it sets up: 612 s beside the package suite on a slow 2-core VM
# (2026-12-06), too near the suite's 900.
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_manual_run_executes_every_stage_through_spark_submit(manual_run):
    conf, dag_run, states = manual_run

    assert states == dict.fromkeys(STAGES, "success")
    assert dag_run.logical_date is None  # the date came from run_after; {{ ds }} would have failed
    [run_dir] = [p for p in (conf / "runs").iterdir() if p.name != "logs"]  # logs: generate's
    assert run_dir.name.startswith(f"airflow-{dag_run.run_after:%Y-%m-%d}-")  # the trigger's date
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert list(summary["stages"]) == [
        "ingest",
        "clean",
        "validate",
        "features",
        "analytics",
        "train",
        "predict",
        "report",
    ]
    analytics = summary["stages"]["analytics"]["metrics"]
    assert {"kmeans", "rules", "trees"} <= set(analytics)  # three tasks, one merged stage
    clean = summary["stages"]["clean"]["metrics"]
    assert all(m["balanced"] for m in clean.values()) and summary["stages"]["clean"]["rows_in"] > 0
    assert {m["ranks"] for m in summary["stages"]["train"]["metrics"].values()} == {2}
    report = (run_dir / "report.html").read_text()
    sections = [
        "Validation (Great Expectations)",
        "Segments (k-means)",
        "Deep learning: digits_cnn",
        "Lineage",
    ]
    for section in sections:
        assert section in report, section


@pytest.mark.slow
def test_a_failed_critical_expectation_stops_every_downstream_task(dag, manual_run, tmp_path):
    """A second DAG run over the first one's tables with a suite no table can pass. Its ingest
    and clean are marked successful, not run: the first run left nothing new for them."""
    impossible = [
        {
            "expectation": "expect_table_row_count_to_be_between",
            "kwargs": {"min_value": 10**9},
            "severity": "critical",
        }
    ]
    data = manual_run[0] / "data"
    conf = write_small_conf(
        tmp_path / "conf",
        validate={"suites": {"customers": impossible}},
        run={"data_root": str(data), "runs_dir": str(tmp_path / "runs")},
    )
    dag_run, states = _run(dag, conf, mark_success="ingest|clean")

    assert dag_run.state == "failed"
    assert states["validate"] == "failed"
    assert {states[t] for t in STAGES[3:]} == {"upstream_failed"}
    [log] = (tmp_path / "runs").glob("*/logs/validate.log")
    assert "critical expectations failed: " in log.read_text()
