"""End to end: every stage over generated data, through the real Delta layer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from deepspark.config import Expectation
from deepspark.pipeline import STAGE_NAMES, Run, StageFailed, run_pipeline, select_stages
from deepspark.sample.retail import generate_customers
from pyspark.sql import functions as F

from tests.report.browser import render

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def small(config):
    """150 customers; the networks train for one epoch (their accuracy is tests/learning's)."""
    models = {name: spec.model_copy(update={"epochs": 1}) for name, spec in config.train.models.items()}
    return config.model_copy(
        update={
            "generate": config.generate.model_copy(update={"customers": 150}),
            "train": config.train.model_copy(update={"models": models}),
        }
    )


def test_the_whole_pipeline_runs_and_accounts_for_every_row(spark, small, tables):
    run = Run(small, spark, tables, "run-1")
    summary_path = run_pipeline(run, select_stages())
    summary = json.loads(summary_path.read_text())

    assert summary["status"] == "ok" and summary["delta_engine"] == "rs"
    assert list(summary["stages"]) == STAGE_NAMES
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
    report = (run.run_dir / "report.md").read_text()
    assert report.count("| clean | ok |") == 1 and "| orders |" in report.split("## Row accounting")[1]

    # Analytics: every configured result is in gold, in the report, and plotted.
    analytics = summary["stages"]["analytics"]["metrics"]
    assert (
        analytics["kmeans"]["k"] in range(2, 9)
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
    assert len(images) >= 10 and all((run.run_dir / image).stat().st_size > 1000 for image in images)
    rendered = render(run.run_dir / "report.html")  # the HTML twin, in a real browser
    assert rendered.title == "deepspark run run-1" and rendered.images == "1" * len(images)

    # Deep learning: both networks trained through Horovod, registered, and scored in batch.
    trained = summary["stages"]["train"]["metrics"]
    assert {name: m["ranks"] for name, m in trained.items()} == {"digits_cnn": 2, "review_rnn": 2}
    assert tables.read("ml.models").count() == 2
    rnn = tables.read("ml.models").filter("name = 'review_rnn'").first()
    gate = json.loads(rnn["validation"])["runs"]["silver.reviews"]  # lineage: the validation run
    assert gate["run_id"] == "run-1" and gate["critical_failed"] == 0 and gate["expectations"] > 0
    assert tables.read("gold.digit_predictions").count() == 5000
    assert tables.read("gold.review_predictions").count() == tables.read("gold.review_sequences").count()
    for section in ["## Deep learning: digits_cnn", "## Deep learning: review_rnn", "## Batch inference"]:
        assert section in report, section

    # A second run lands nothing new and quarantines nothing twice.
    quarantined = tables.read("quarantine.rows").count()
    again = Run(small, spark, tables, "run-2")
    run_pipeline(again, ["ingest", "clean"])
    assert again.results["ingest"].rows_out == 0
    assert tables.read("quarantine.rows").count() == quarantined


RAW_PII = r"@example\.com|\+33 6 "


def test_no_raw_pii_reaches_silver_gold_results_reports_or_data_docs(spark, small, tables):
    run = Run(small, spark, tables, "run-pii")
    run_pipeline(run, select_stages())
    raw = generate_customers(spark, 150, small.generate, small.run.seed).collect()
    secrets = {v for r in raw for v in (r.email, r.phone, r.birth_date) if v}
    assert len(secrets) > 300

    outputs = [*Path(small.run.runs_dir).rglob("*"), *(Path(small.run.data_root) / "gx").rglob("*")]
    files = [p for p in outputs if p.is_file() and p.suffix in (".json", ".md", ".html")]
    assert any(p.name == "index.html" for p in files) and any(p.name == "report.md" for p in files)
    texts = {str(path): path.read_text(errors="replace") for path in files}
    for table in [t for t in tables.list() if t.split(".")[0] in ("silver", "gold", "quality")]:
        df = tables.read(table).drop("pixels")
        rows = df.select(F.concat_ws("|", *[F.col(c).cast("string") for c in df.columns])).collect()
        texts[table] = "\n".join(r[0] for r in rows)
    for where, text in texts.items():
        leaked = [value for value in secrets if value in text]
        assert not leaked, f"raw PII in {where}: {leaked[:3]}"
        assert not re.search(RAW_PII, text), where


def test_a_critical_expectation_stops_the_run_and_still_writes_the_summary(spark, small, tables):
    impossible = Expectation(
        expectation="expect_table_row_count_to_be_between", kwargs={"min_value": 10**9}, severity="critical"
    )
    strict = small.model_copy(
        update={"validate_": small.validate_.model_copy(update={"suites": {"customers": [impossible]}})}
    )
    run = Run(strict, spark, tables, "run-fail")
    with pytest.raises(StageFailed, match="summary at"):
        run_pipeline(run, ["generate", "ingest", "clean", "validate", "features"])
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["stages"]["validate"]["status"] == "failed"
    assert re.search(
        r"expect_table_row_count_to_be_between on silver.customers: observed \d+",
        summary["stages"]["validate"]["notes"][0],
    )
    assert "features" not in summary["stages"]


def test_stage_selection():
    assert select_stages(start="features") == ["features", "analytics", "train", "predict", "report"]
    assert select_stages(only=["report", "ingest"]) == ["ingest", "report"]
    with pytest.raises(ValueError, match="unknown stage"):
        select_stages(only=["ingset"])


def _cli(tmp_path, *args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DEEPSPARK_SECRET_PII_HMAC_KEY": "cli-test-key"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "deepspark.cli",
            *args,
            "--set",
            f"run.data_root={tmp_path / 'data'}",
            "--set",
            f"run.runs_dir={tmp_path / 'runs'}",
            "--set",
            "generate.customers=80",
            "--set",
            "spark.master=local[2]",
            "--set",
            "train.models.digits_cnn.epochs=1",
            "--set",
            "train.models.review_rnn.epochs=1",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )


def test_cli_run_shows_progress_prints_the_report_path_last_and_lists_tables(tmp_path):
    done = _cli(tmp_path, "run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not re.search(RAW_PII, done.stdout + done.stderr), "raw PII in the logs"
    report = Path(done.stdout.strip().splitlines()[-1])
    assert report.name == "report.html" and report.is_file()
    summary = Path(re.search(r"^summary: (.+)$", done.stderr, re.M).group(1))
    assert summary.parent == report.parent and json.loads(summary.read_text())["status"] == "ok"
    for stage in STAGE_NAMES:  # stage by stage, then the bars of the long steps, finished
        assert f"[{stage}] running ..." in done.stderr and f"[{stage}] ok" in done.stderr, stage
    assert re.search(r"train digits_cnn \(epochs\).*1/1", done.stderr)
    assert re.search(r"clean \(datasets\).*3/3", done.stderr)
    listing = _cli(tmp_path, "tables")
    assert "silver.orders" in listing.stdout and "gold.digits" in listing.stdout


def test_cli_bad_config_names_the_key_and_exits_2(tmp_path):
    done = _cli(tmp_path, "ingest", "--set", "analytics.kmeans.k=1")
    assert done.returncode == 2
    assert (
        "--set analytics.kmeans.k=1: key 'analytics.kmeans.k' = 1: expected k >= 2, or a range "
        "[min, max] with 2 <= min <= max" in done.stderr
    )


def test_cli_exits_non_zero_naming_the_failed_critical_expectation(tmp_path):
    suite = "[{expectation: expect_column_values_to_be_between, kwargs: {column: amount, max_value: 1}}]"
    done = _cli(
        tmp_path,
        "run",
        "--only",
        "generate,ingest,clean,validate",
        "--set",
        f"validate.suites.orders={suite}",
    )
    assert done.returncode == 1
    assert re.search(
        r"critical expectations failed: expect_column_values_to_be_between on silver.orders.amount: "
        r"\d+ unexpected values",
        done.stderr,
    )
