"""deepspark, daily: one spark-submit per stage of the pipeline.

    ingest -> clean -> validate -> features -> {kmeans, rules, trees} -> train -> predict -> report

* Each task runs the stage's thin entry point in ``jobs/`` through ``SparkSubmitOperator`` on the
  connection ``deepspark_spark`` (e.g. ``AIRFLOW_CONN_DEEPSPARK_SPARK='{"conn_type": "spark",
  "host": "spark://spark-master", "port": 7077}'``; ``"host": "local[2]"`` on one machine).
* All tasks of a DAG run share one deepspark run id, so the report covers the whole DAG run.
  The id is made from the run's date and its Airflow run id. The date is the logical date of a
  scheduled run, or when a manual or API run was triggered: Airflow 3 gives those no logical
  date, so ``{{ ds }}`` would fail there.
* ``validate`` is the gate: a failed critical expectation makes its spark-submit exit 1, and
  every downstream task ends ``upstream_failed``. It is not retried (the data would not change);
  every other task retries with exponential back-off.
* Params: ``env`` (the conf overlay), ``conf_dir``, ``venv`` (the deepspark environment: its
  ``spark-submit`` and Python are used, never Airflow's own).
* Secrets never pass through the DAG (its templates are rendered in the UI): the PII key is
  ``DEEPSPARK_SECRET_PII_HMAC_KEY`` in the workers' environment, set by the deployment from its
  secret store, or ``secrets.yaml`` in ``conf_dir``'s ``local/`` overlay. Only the drivers
  (spark-submit) read it.

Where the repository lives: ``DEEPSPARK_HOME`` (default: three folders up from this file).
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, Param

HOME = Path(os.environ.get("DEEPSPARK_HOME") or Path(__file__).resolve().parents[3])
CONNECTION = "deepspark_spark"
ANALYSES = ("kmeans", "rules", "trees")


def run_date(dag_run) -> str:
    """The day a DAG run is for: its logical date, else (manual/API runs) when it was triggered."""
    when = dag_run.logical_date or dag_run.run_after
    return when.strftime("%Y-%m-%d")


def deepspark_run_id(dag_run) -> str:
    """One deepspark run id per DAG run, readable and safe as a folder name."""
    digest = hashlib.sha256(dag_run.run_id.encode()).hexdigest()[:8]
    return f"airflow-{run_date(dag_run)}-{digest}"


COMMON_ARGS = ["--env", "{{ params.env }}", "--conf-dir", "{{ params.conf_dir }}"]
RUN_ID = "{{ deepspark_run_id(dag_run) }}"
ENVIRONMENT = {
    # spark-submit and the driver's and executors' Python come from the deepspark environment.
    "PATH": "{{ params.venv }}/bin:" + os.environ.get("PATH", "/usr/bin:/bin"),
    "PYSPARK_PYTHON": "{{ params.venv }}/bin/python",
    "PYSPARK_DRIVER_PYTHON": "{{ params.venv }}/bin/python",
    "TF_USE_LEGACY_KERAS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONUNBUFFERED": "1",
}


def spark_stage(task_id: str, job: str, arguments: list[str], **options) -> SparkSubmitOperator:
    return SparkSubmitOperator(
        task_id=task_id,
        application=str(HOME / "jobs" / f"{job}.py"),
        application_args=arguments,
        conn_id=CONNECTION,
        name=f"deepspark-{task_id}-{{{{ run_date(dag_run) }}}}",
        env_vars=ENVIRONMENT,
        **options,
    )


with DAG(
    dag_id="deepspark_daily",
    description="deepspark pipeline: ingest to report, one spark-submit per stage",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # stages of two runs would race on the same Delta tables
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=20),
        "execution_timeout": timedelta(hours=4),
    },
    params={
        "env": Param("local", type="string", description="conf overlay: conf/<env>/"),
        "conf_dir": Param(str(HOME / "conf"), type="string", description="the conf folder"),
        "venv": Param(str(HOME / ".venv"), type="string", description="the deepspark environment"),
    },
    user_defined_macros={"run_date": run_date, "deepspark_run_id": deepspark_run_id},
    tags=["deepspark"],
) as dag:
    stage_args = [*COMMON_ARGS, "--run-id", RUN_ID]
    ingest = spark_stage("ingest", "ingest", stage_args)
    clean = spark_stage("clean", "clean", stage_args)
    validate = spark_stage("validate", "validate", stage_args, retries=0)
    features = spark_stage("features", "features", stage_args)
    analyses = [spark_stage(part, "analytics", ["--part", part, *stage_args]) for part in ANALYSES]
    train = spark_stage("train", "train", stage_args)
    predict = spark_stage("predict", "predict", stage_args)
    report = spark_stage("report", "report", stage_args)

    ingest >> clean >> validate >> features >> analyses >> train >> predict >> report
