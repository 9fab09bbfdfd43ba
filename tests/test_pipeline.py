"""End to end: every stage over generated data, through the real Delta layer.

One whole run (`deepspark run` in its own process, as a user runs it) is shared by every test
here: the in-process checks read its tables and summary, the failure checks re-validate its
silver with a stricter suite."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from deepspark.config import Expectation, load_config
from deepspark.pipeline import STAGE_NAMES, run_pipeline
from deepspark.run import Run, StageFailed, run_as_of
from deepspark.stages.generate.retail import generate_customers
from deepspark.stages.predict import latest_model
from deepspark.tables import Tables
from mlflow import MlflowClient
from pyspark.sql import functions as F

from tests.report.browser import render

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


RAW_PII = r"@example\.com|\+33 6 "
SECRET_KEY = "sentinel-key-7d41c9e0b2"  # the PII key of CLI runs: it must appear nowhere
RAW_ZONES = ("landing", "bronze", "quarantine")  # raw records are kept there by design


def overrides(folder: Path) -> list[str]:
    """What the shared run sets over conf/: its folder, 80 customers, one k-means fit per k over
    a short range and one epoch per network (tests/analytics holds k-means to scikit-learn,
    tests/learning the networks to their accuracy)."""
    return [
        f"run.data_root={folder / 'data'}",
        f"run.runs_dir={folder / 'runs'}",
        "generate.customers=80",
        "analytics.kmeans.k=[2,4]",
        "analytics.kmeans.n_init=1",
        "spark.master=local[2]",
        "train.models.digits_cnn.epochs=1",
        "train.models.review_rnn.epochs=1",
    ]


def _cli(folder, *args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DEEPSPARK_SECRET_PII_HMAC_KEY": SECRET_KEY}
    sets = [part for item in overrides(folder) for part in ("--set", item)]
    return subprocess.run(
        [sys.executable, "-m", "deepspark.cli", args[0], *sets, *args[1:]],  # a test's own --set wins
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """The suite's one whole run on the local path: `deepspark run` in its own process, as a user
    runs it. Every test of a whole run reads it: (its folder, the finished process)."""
    folder = tmp_path_factory.mktemp("cli-run")
    done = _cli(folder, "run")
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, done


@pytest.fixture(scope="module")
def finished(cli_run, spark):
    """The shared run as this process sees it: its config, tables, summary and run folder."""
    folder, done = cli_run
    config = load_config(overrides=overrides(folder), environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": SECRET_KEY})
    summary_path = Path(re.search(r"^summary: (.+)$", done.stderr, re.M).group(1))
    return config, Tables(spark, config), json.loads(summary_path.read_text()), summary_path.parent


def test_the_whole_pipeline_runs_and_accounts_for_every_row(spark, finished):
    config, tables, summary, run_dir = finished

    assert summary["status"] == "ok" and summary["delta_engine"] == "rs"
    assert tuple(summary["stages"]) == STAGE_NAMES
    for dataset, counts in summary["stages"]["clean"]["metrics"].items():
        assert counts["rows_in"] == (
            counts["rows_out"] + counts["rows_quarantined"] + counts["rows_deduplicated"]
        ), dataset
    assert summary["stages"]["clean"]["rows_quarantined"] > 0  # the generator's dirt arrives
    for table in [
        "silver.customers",
        "silver.orders",
        "gold.customer_rfm_features",
        "gold.reviews_features",
        "gold.segments",
        "gold.association_rules",
        "gold.tree_rules",
        "gold.digits",
        "quarantine.rows",
    ]:
        assert tables.exists(table), table
    assert tables.read("gold.digits").count() == 5000
    report = (run_dir / "report.md").read_text()
    assert report.count("| clean | ok |") == 1 and "| orders |" in report.split("## Row accounting")[1]

    # Analytics: every configured result is in gold, in the report, and plotted.
    analytics = summary["stages"]["analytics"]["metrics"]
    assert (
        analytics["kmeans"]["k"] in range(2, 5)
        and len(analytics["kmeans"]["profiles"]) == analytics["kmeans"]["k"]
    )
    assert tables.read("gold.segments").count() == tables.read("gold.customer_rfm_features").count()
    assert analytics["rules"]["rules"] == tables.read("gold.association_rules").count() > 0
    assert {r.tree for r in tables.read("gold.tree_rules").select("tree").distinct().collect()} == {
        "review_sentiment",
        "customer_value",
    }
    for section in [
        "## Features (gold)",
        "## Segments (k-means)",
        "## Association rules",
        "## Decision tree",
    ]:
        assert section in report, section
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    assert len(images) >= 10 and all((run_dir / image).stat().st_size > 1000 for image in images)
    rendered = render(run_dir / "report.html")  # the HTML twin, in a real browser
    assert rendered.title == f"deepspark run {run_dir.name}" and rendered.images == "1" * len(images)

    # Deep learning: both networks trained through Horovod, registered, and scored in batch.
    trained = summary["stages"]["train"]["metrics"]
    assert {name: m["ranks"] for name, m in trained.items()} == {"digits_cnn": 2, "review_rnn": 2}
    assert tables.read("ml.models").count() == 2
    rnn = tables.read("ml.models").filter("name = 'review_rnn'").first()
    gate = json.loads(rnn["validation"])["runs"]["silver.reviews"]  # lineage: the validation run
    assert gate["run_id"] == run_dir.name and gate["critical_failed"] == 0 and gate["expectations"] > 0
    assert tables.read("gold.digit_predictions").count() == 5000
    assert tables.read("gold.review_predictions").count() == tables.read("gold.review_sequences").count()
    for section in ["## Deep learning: digits_cnn", "## Deep learning: review_rnn", "## Batch inference"]:
        assert section in report, section

    # A second run lands nothing new and quarantines nothing twice.
    quarantined = tables.read("quarantine.rows").count()
    again = Run(config, spark, tables, "run-2")
    run_pipeline(again, ["ingest", "clean"])
    assert again.results["ingest"].rows_out == 0
    assert tables.read("quarantine.rows").count() == quarantined


def test_the_benchmarks_plain_pyspark_job_cleans_the_shop_as_deepspark_does(spark, finished, tmp_path):
    """bench/plain_spark.py, the job deepspark's stages are timed against, holds the same rules:
    over the run's landing files its silver tables and quarantine reasons equal deepspark's."""
    sys.path.insert(0, str(REPO / "bench"))
    import anchors
    import plain_spark

    config, tables, _, run_dir = finished
    plain_spark.ingest(spark, config.landing_root, tmp_path)
    plain_spark.clean(spark, tmp_path, SECRET_KEY.encode(), run_as_of(run_dir))  # the run's 'now'
    for table, key in anchors.SILVER.items():
        theirs = spark.read.format("delta").load(str(tmp_path / "silver" / table))
        assert anchors.spark_digest(theirs, key) == anchors.spark_digest(tables.read(f"silver.{table}"), key)
    quarantined = spark.read.format("delta").load(str(tmp_path / "quarantine"))
    assert anchors.quarantine_counts(quarantined) == anchors.quarantine_counts(tables.read("quarantine.rows"))


def test_mlflow_holds_every_model_of_the_run_with_its_delta_inputs(finished):
    config, tables, summary, run_dir = finished
    client = MlflowClient(tracking_uri=config.tracking_uri)  # the default store, under data_root
    assert config.tracking_uri.endswith("/data/mlflow/mlflow.db")
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    found = client.search_runs([experiment.experiment_id], f"tags.`deepspark.run_id` = '{run_dir.name}'")
    runs = {r.data.tags["deepspark.model"]: r for r in found}
    trees = {f"tree {name}" for name in config.analytics.trees}
    assert set(runs) == {"digits_cnn", "review_rnn", "kmeans", *trees}
    for row in tables.read("ml.models").collect():  # each network: its run, its registry version
        tracked = runs[row["name"]]
        assert row["mlflow_run_id"] == tracked.info.run_id
        champion = client.get_model_version_by_alias(row["name"], config.tracking.champion_alias)
        assert champion.run_id == tracked.info.run_id
        assert champion.tags["deepspark.model_version"] == str(row["model_version"])
        inputs = {d.dataset.name: json.loads(d.dataset.source) for d in tracked.inputs.dataset_inputs}
        sources = json.loads(row["sources"])
        assert {name: source["delta_table_version"] for name, source in inputs.items()} == {
            f"{table}@v{version}": version for table, version in sources.items()
        }
        assert tracked.data.metrics["test_accuracy"] == json.loads(row["metrics"])["test_accuracy"]
        assert len(client.get_metric_history(tracked.info.run_id, "loss")) == 1  # one epoch each
        assert {f.path for f in client.list_artifacts(tracked.info.run_id, "model")} >= {
            "model/model.h5",
            "model/manifest.json",
        }
    kmeans = summary["stages"]["analytics"]["metrics"]["kmeans"]
    assert kmeans["mlflow"]["run_id"] == runs["kmeans"].info.run_id
    assert round(runs["kmeans"].data.metrics["silhouette"], 4) == kmeans["silhouette"]
    assert runs["kmeans"].data.params["k"] == str(kmeans["k"])


def test_a_critical_expectation_stops_the_run_and_still_writes_the_summary(spark, finished):
    config, tables, _, _ = finished
    impossible = Expectation(
        expectation="expect_table_row_count_to_be_between", kwargs={"min_value": 10**9}, severity="critical"
    )
    strict = config.model_copy(
        update={"validate_": config.validate_.model_copy(update={"suites": {"customers": [impossible]}})}
    )
    run = Run(strict, spark, tables, "run-fail")
    with pytest.raises(StageFailed, match="summary at"):
        run_pipeline(run, ["validate", "features"])  # over the shared run's silver
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["stages"]["validate"]["status"] == "failed"
    assert re.search(
        r"expect_table_row_count_to_be_between on silver.customers: observed \d+",
        summary["stages"]["validate"]["notes"][0],
    )
    assert "features" not in summary["stages"]


def test_cli_run_shows_progress_prints_the_report_path_last_and_lists_tables(cli_run):
    tmp_path, done = cli_run
    assert not re.search(RAW_PII, done.stdout + done.stderr), "raw PII in the logs"
    report = Path(done.stdout.strip().splitlines()[-1])
    assert report.name == "report.html" and report.is_file()
    summary = Path(re.search(r"^summary: (.+)$", done.stderr, re.M).group(1))
    assert summary.parent == report.parent and json.loads(summary.read_text())["status"] == "ok"
    for stage in STAGE_NAMES:  # one line per stage, then the bars of the long steps, finished
        assert re.search(rf"^\[{stage}\] +ok +\d+\.\ds", done.stderr, re.M), stage
    assert re.search(r"train digits_cnn \(epochs\).*1/1", done.stderr)
    assert re.search(r"clean \(datasets\).*3/3", done.stderr)
    listing = _cli(tmp_path, "tables")
    assert "silver.orders" in listing.stdout and "gold.digits" in listing.stdout


def test_a_successful_cli_run_is_quiet_and_its_log_holds_the_rest(cli_run):
    _, done = cli_run
    console = done.stdout + done.stderr
    for noise in [
        "WARN",
        "Traceback",
        "absl",
        "cuda",
        "Cache cleanup",
        "<stderr>",
        "INFO",
        "resolved config",
    ]:
        assert noise not in console, noise
    assert len(done.stderr.splitlines()) <= 34  # one screen: run line, stages and their parts, bars, paths
    log = Path(re.search(r"^log: (.+)$", done.stderr, re.M).group(1))
    assert log.parent.name == "logs" and log.name == "run.log"
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "spark session: master=local[2]" in text and "log4j" in text  # ours and the JVM's
    assert "<stderr>" in text  # the Horovod ranks' output


def test_cli_predict_scores_new_files_by_the_models_saved_recipe(cli_run, finished):
    folder, _ = cli_run
    digits = folder / "data" / "landing" / "digits"  # the landed parquet: no gold table, no config
    done = _cli(folder, "predict", "--model", "digits_cnn:1", "--input", str(digits))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "gold.digits_cnn_scored"
    said = rf"^digits_cnn v1 scored 5000 row\(s\) of {re.escape(str(digits))} -> gold.digits_cnn_scored v0$"
    assert re.search(said, done.stderr, re.M)
    assert re.search(r"^  accuracy against the label: 0\.\d{4} on 5000 row\(s\)$", done.stderr, re.M)
    _, tables, _, _ = finished
    with pytest.raises(LookupError, match=r"no version 9 of 'digits_cnn'; expected one of \[1\]"):
        latest_model(tables, "digits_cnn", 9)


def test_cli_bad_config_names_the_key_and_exits_2(tmp_path):
    done = _cli(tmp_path, "ingest", "--set", "analytics.kmeans.k=1")
    assert done.returncode == 2
    assert (
        "--set analytics.kmeans.k=1: key 'analytics.kmeans.k' = 1: expected k >= 2, or a range "
        "[min, max] with 2 <= min <= max" in done.stderr
    )


def test_cli_exits_non_zero_naming_the_failed_critical_expectation(cli_run):
    folder, _ = cli_run
    suite = "[{expectation: expect_column_values_to_be_between, kwargs: {column: amount, max_value: 1}}]"
    done = _cli(folder, "validate", "--set", f"validate.suites.orders={suite}")
    assert done.returncode == 1
    assert re.search(
        r"critical expectations failed: expect_column_values_to_be_between on silver.orders.amount: "
        r"\d+ unexpected values",
        done.stderr,
    )


def test_no_raw_pii_or_secret_in_tables_logs_reports_models_or_data_docs(spark, base_config, cli_run):
    folder, done = cli_run
    raw = generate_customers(spark, 80, base_config.generate, base_config.run.seed).collect()
    pii = {v for r in raw for v in (r.email, r.phone, r.birth_date) if v}
    assert len(pii) > 150

    config = base_config.model_copy(
        update={
            "run": base_config.run.model_copy(
                update={"data_root": folder / "data", "runs_dir": folder / "runs"}
            )
        }
    )
    tables = Tables(spark, config)
    outside_raw = [t for t in tables.list() if t.split(".")[0] not in RAW_ZONES]
    assert {"silver.customers", "gold.segments", "quality.expectation_results", "ml.models"} <= set(
        outside_raw
    )
    assert not {"first_name", "last_name", "email", "phone", "birth_date"} & set(
        tables.read("silver.customers").columns
    )
    texts = {"the run's stdout and stderr": done.stdout + done.stderr}
    for table in outside_raw:
        df = tables.read(table).drop("pixels")
        rows = df.select(F.concat_ws("|", *[F.col(f"`{c}`").cast("string") for c in df.columns])).collect()
        texts[table] = "\n".join(r[0] or "" for r in rows)
    files = [p for p in folder.rglob("*") if p.is_file()]
    # Every other file (reports, summaries, Data Docs, models, TensorBoard logs, Delta logs):
    for path in files:
        if path.suffix != ".parquet" and not set(path.relative_to(folder).parts) & set(RAW_ZONES):
            texts[str(path)] = path.read_bytes().decode("latin-1")
    assert any(p.name == "index.html" for p in files) and any(p.suffix == ".h5" for p in files)
    for where, text in texts.items():
        leaked = [value for value in pii if value in text]
        assert not leaked, f"raw PII in {where}: {leaked[:3]}"
        assert not re.search(RAW_PII, text), where

    # The key: nowhere at all, raw zones and data files included.
    everywhere = [done.stdout, done.stderr, *(p.read_bytes().decode("latin-1") for p in files)]
    assert not any(SECRET_KEY in text or SECRET_KEY.encode().hex() in text for text in everywhere)
