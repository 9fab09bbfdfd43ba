"""Stage results saved per process, merged per run, and the report rebuilt from them."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from deepspark.pipeline import STAGE_NAMES, write_summary
from deepspark.run import Run, StageResult, load_results, run_dir, save_result

from tests.report.browser import render


def _save(config, spark, tables, run_id, stage, result, parts=()):
    save_result(Run(config, spark, tables, run_id, parts=parts), stage, result)


def test_parts_of_a_stage_saved_by_separate_processes_merge_into_one_result(spark, config, tables):
    _save(config, spark, tables, "r1", "clean", StageResult(rows_in=10, rows_out=9, rows_quarantined=1))
    kmeans = StageResult(rows_in=5, rows_out=5, tables={"gold.segments": 1}, metrics={"kmeans": {"k": 3}})
    rules = StageResult(status="warning", rows_in=7, tables={"gold.rules": 2}, metrics={"rules": {"n": 4}})
    _save(config, spark, tables, "r1", "analytics", rules, parts=("rules",))
    _save(config, spark, tables, "r1", "analytics", kmeans, parts=("kmeans",))
    _save(config, spark, tables, "r1", "ingest", StageResult(rows_in=10, rows_out=10))

    results, context = load_results(run_dir(config, "r1"), STAGE_NAMES)

    assert list(results) == ["ingest", "clean", "analytics"]  # pipeline order, not save order
    merged = results["analytics"]
    assert (merged.status, merged.rows_in, merged.rows_out) == ("warning", 12, 5)
    assert merged.tables == {"gold.segments": 1, "gold.rules": 2}
    assert merged.metrics == {"kmeans": {"k": 3}, "rules": {"n": 4}}
    assert context == {"config_hash": config.digest(), "delta_engine": tables.engine.name}


def test_a_rerun_of_a_stage_replaces_its_result_and_the_summary_covers_every_process(spark, config, tables):
    run = Run(config, spark, tables, "r2")
    save_result(run, "ingest", StageResult(status="failed", notes=["first attempt"]))
    save_result(run, "ingest", StageResult(rows_in=3, rows_out=3))  # the retry
    save_result(Run(config, spark, tables, "r2"), "clean", StageResult(rows_in=3, rows_out=3))

    summary = json.loads(write_summary(run, datetime.now(UTC)).read_text())

    assert summary["status"] == "ok" and list(summary["stages"]) == ["ingest", "clean"]
    assert summary["stages"]["ingest"]["notes"] == []


def test_a_run_id_that_is_not_a_plain_name_is_refused(config):
    for bad in ["../escape", "a/b", "", "x" * 129, "manual__2026-11-24T10:00:00+00:00"]:
        with pytest.raises(ValueError, match="run id"):
            run_dir(config, bad)


def _report_cli(config, *args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "deepspark.cli",
            "report",
            *args,
            "--set",
            f"run.runs_dir={config.run.runs_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DEEPSPARK_SECRET_PII_HMAC_KEY": "report-test-key"},
    )


def test_deepspark_report_rebuilds_the_html_and_markdown_and_it_renders_in_chromium(spark, config, tables):
    counts = {"rows_in": 10, "rows_out": 8, "rows_quarantined": 1, "rows_deduplicated": 1, "balanced": True}
    clean = StageResult(rows_in=10, rows_out=8, rows_quarantined=1, rows_deduplicated=1)
    clean.metrics = {"orders": {**counts, "quarantine_reasons": {"null": 1}}}
    validated = StageResult(status="warning", metrics={"data_docs": "file:///docs/index.html"})
    validated.metrics["orders"] = {"version": 3, "expectations": 5, "failed": ["expect_x on silver.orders.a"]}
    _save(config, spark, tables, "r3", "ingest", StageResult(rows_in=10, rows_out=10))
    _save(config, spark, tables, "r3", "clean", clean)
    _save(config, spark, tables, "r3", "validate", validated)

    done = _report_cli(config, "r3")

    assert done.returncode == 0, done.stderr[-3000:]
    html = run_dir(config, "r3") / "report.html"
    assert done.stdout.strip() == str(html)
    markdown = (html.parent / "report.md").read_text()
    assert "| orders | 10 | 8 | 1 | 1 | True | null 1 |" in markdown
    assert "| orders | 3 | 5 | 1 | expect_x on silver.orders.a |" in markdown
    page = html.read_text()
    assert '<a href="file:///docs/index.html">' in page and "<table>" in page
    rendered = render(html)
    assert rendered.title == "deepspark run r3"
    assert rendered.images == "1"  # the row-accounting plot, loaded from its file
    assert rendered.screenshot.stat().st_size > 20_000


def test_the_report_of_an_unknown_run_names_the_runs_there(spark, config, tables):
    _save(config, spark, tables, "known-run", "ingest", StageResult())
    done = _report_cli(config, "no-such-run")
    assert done.returncode == 2
    assert "run 'no-such-run': no stage results under" in done.stderr and "known-run" in done.stderr


def test_data_in_a_report_cell_neither_breaks_its_table_nor_becomes_markup(tmp_path):
    from deepspark.stages.report.stage import RunRecord, render_html, render_markdown

    items = ["milk | honey", "<script>alert(1)</script>", "*bold*", "[x](javascript:alert(1))"]
    rule = {"antecedent": items, "consequent": ["tea, green"], "support": 0.5, "confidence": 0.9}
    rules = {
        "baskets": 2,
        "inputs": {"silver.baskets": 3},
        "itemsets": 5,
        "itemset_estimate": 31,
        "estimate_kind": "bound",
        "rules": 1,
        "top_by_lift": [{**rule, "lift": 1.5, "leverage": 0.1, "conviction": None}],
        "plots": [],
    }
    record = RunRecord("r4", tmp_path, {"analytics": StageResult(metrics={"rules": rules})}, "hash", "rs")
    page = render_html(render_markdown(record, tmp_path / "rows.png"), "t")

    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)
    [cells] = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows if "honey" in row]
    assert len(cells) == 7  # if, then, support, confidence, lift, leverage, conviction
    assert html.unescape(cells[0]) == ", ".join(items) and cells[1] == "tea, green"
    assert "<script>" not in page and "<em>" not in page and 'href="javascript' not in page
