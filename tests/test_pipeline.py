"""End to end: every stage over generated data, through the real Delta layer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from deepspark.pipeline import STAGE_NAMES, Run, StageFailed, run_pipeline, select_stages
from deepspark.sample.retail import generate_customers
from pyspark.sql import functions as F

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def small(config):
    return config.model_copy(update={"generate": config.generate.model_copy(update={"customers": 150})})


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
        "gold.customer_features",
        "gold.customer_segments",
        "gold.digits",
        "quarantine.rows",
    ]:
        assert tables.exists(table), table
    assert tables.read("gold.digits").count() == 5000
    assert (run.run_dir / "report.md").read_text().count("| clean | ok |") == 1

    # A second run lands nothing new and quarantines nothing twice.
    quarantined = tables.read("quarantine.rows").count()
    again = Run(small, spark, tables, "run-2")
    run_pipeline(again, ["ingest", "clean"])
    assert again.results["ingest"].rows_out == 0
    assert tables.read("quarantine.rows").count() == quarantined


def test_no_raw_pii_reaches_silver_or_gold(spark, small, tables):
    run_pipeline(Run(small, spark, tables, "run-pii"), ["generate", "ingest", "clean", "features"])
    raw = generate_customers(spark, 150, small.generate, small.run.seed)
    emails = {r.email for r in raw.select("email").collect() if r.email}
    phones = {r.phone for r in raw.select("phone").collect()}
    assert emails and phones
    for table in [t for t in tables.list() if t.split(".")[0] in ("silver", "gold")]:
        df = tables.read(table)
        text = df.select(F.concat_ws("|", *[F.col(c).cast("string") for c in df.columns]).alias("row"))
        found = text.filter(F.col("row").rlike("@example\\.com|\\+33 6 ")).count()
        assert found == 0, f"raw PII in {table}"


def test_a_failing_stage_stops_the_run_and_still_writes_the_summary(spark, small, tables):
    strict = small.model_copy(
        update={"validate_": small.validate_.model_copy(update={"min_rows": {"customers": 10**9}})}
    )
    run = Run(strict, spark, tables, "run-fail")
    with pytest.raises(StageFailed, match="summary at"):
        run_pipeline(run, ["generate", "ingest", "clean", "validate", "features"])
    summary = json.loads((run.run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["stages"]["validate"]["status"] == "failed"
    assert "min_rows observed 150" in summary["stages"]["validate"]["notes"][0]
    assert "features" not in summary["stages"]


def test_stage_selection():
    assert select_stages(start="features") == ["features", "analytics", "train", "report"]
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
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )


def test_cli_run_prints_the_summary_path_last_and_lists_tables(tmp_path):
    done = _cli(tmp_path, "run")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = Path(done.stdout.strip().splitlines()[-1])
    assert summary.name == "summary.json" and json.loads(summary.read_text())["status"] == "ok"
    listing = _cli(tmp_path, "tables")
    assert "silver.orders" in listing.stdout and "gold.digits" in listing.stdout


def test_cli_bad_config_names_the_key_and_exits_2(tmp_path):
    done = _cli(tmp_path, "ingest", "--set", "analytics.k=1")
    assert done.returncode == 2
    assert (
        "--set analytics.k=1: key 'analytics.k' = 1: expected input should be greater "
        "than or equal to 2" in done.stderr
    )
