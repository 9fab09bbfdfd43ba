"""The examples run end to end, each from a copy of its folder: iris through the CLI exactly as
the README says (one CSV, one clean dataset, one tree: every other stage skipped), wine and
baskets in this process's session. Their results are checked against scikit-learn and mlxtend."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from deepspark.config import load_config
from deepspark.pipeline import STAGE_NAMES, run_pipeline
from deepspark.run import Run
from deepspark.tables import Tables
from mlxtend.frequent_patterns import association_rules as mlxtend_rules
from mlxtend.frequent_patterns import fpgrowth
from mlxtend.preprocessing import TransactionEncoder

from tests.small_conf import REPO

pytestmark = pytest.mark.slow
EXAMPLES = REPO / "examples"


def copied(name: str, tmp_path) -> Path:
    """The example's folder (conf and landing files) copied under ``tmp_path``."""
    folder = tmp_path / name
    shutil.copytree(EXAMPLES / name, folder, ignore=shutil.ignore_patterns("data", "runs"))
    return folder


def balanced(summary_stages: dict) -> bool:
    return all(
        m["rows_in"] == m["rows_out"] + m["rows_quarantined"] + m["rows_deduplicated"]
        for m in summary_stages["clean"]["metrics"].values()
    )


def test_one_csv_one_dataset_one_tree_runs_with_every_other_stage_skipped(tmp_path):
    folder = copied("iris", tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "deepspark.cli", "run", "--conf-dir", str(folder / "conf")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = done.stdout.strip().splitlines()[-1]
    assert report.startswith(str(folder / "runs")) and report.endswith("report.html")
    summary = json.loads((folder / "runs").glob("*/summary.json").__next__().read_text())
    stages = summary["stages"]
    ran = {"ingest", "clean", "features", "analytics", "report"}
    assert {name: s["status"] for name, s in stages.items()} == {
        name: ("ok" if name in ran else "skipped") for name in STAGE_NAMES
    }
    assert "no train.models in conf" in stages["train"]["notes"]
    assert "[validate]   skipped" in done.stderr and "no validate.suites in conf" in done.stderr
    assert balanced(stages) and stages["clean"]["rows_in"] == 150
    assert stages["clean"]["rows_deduplicated"] == 1  # iris has one flower twice
    tree = stages["analytics"]["metrics"]["trees"]["species"]
    assert tree["metrics"]["accuracy"] >= 0.85 and tree["rows"] == 149
    assert (folder / "data" / "tables" / "gold" / "flowers_features").is_dir()
    text = (Path(report).parent / "report.md").read_text(encoding="utf-8")
    assert "| flowers | 1 | 1 | 0 | 150 |  |  |" in text  # the sources table: files, rows, no issues
    assert "no train.models in conf" in text  # a skipped stage says why


def run_example(name: str, spark, tmp_path) -> tuple[Run, Tables]:
    config = load_config(copied(name, tmp_path) / "conf", environ={})
    tables = Tables(spark, config)
    done = Run(config, spark, tables, f"example-{name}")
    run_pipeline(done, list(STAGE_NAMES))
    return done, tables


def test_wine_reads_integral_decimals_and_na_tokens_and_segments_by_chemistry(spark, tmp_path):
    done, tables = run_example("wine", spark, tmp_path)
    cleaned = done.results["clean"].metrics["wines"]
    assert (cleaned["rows_in"], cleaned["rows_out"], cleaned["rows_quarantined"]) == (178, 178, 0)
    silver = tables.read("silver.wines")
    assert dict(silver.dtypes)["magnesium"] == "int" and dict(silver.dtypes)["proline"] == "int"
    raw = pd.read_csv(EXAMPLES / "wine" / "landing" / "wines" / "wine.csv")
    assert sorted(r.magnesium for r in silver.select("magnesium").collect()) == sorted(raw.magnesium)
    malic = [r.malic_acid for r in silver.select("malic_acid").collect()]
    assert None not in malic and raw.malic_acid.isna().sum() == 7  # NA filled with the median
    assert done.results["validate"].status == "ok"
    segments = done.results["analytics"].metrics["kmeans"]
    assert segments["k"] == 3 and sum(p["size"] for p in segments["profiles"]) == 178


def test_baskets_split_into_items_and_rules_equal_mlxtend(spark, tmp_path):
    done, tables = run_example("baskets", spark, tmp_path)
    assert done.results["clean"].metrics["orders"]["rows_deduplicated"] == 6  # six orders sent twice
    baskets = [r["items"] for r in tables.read("silver.orders").collect()]
    assert all(item == item.strip().lower() for basket in baskets for item in basket)
    encoder = TransactionEncoder()
    onehot = pd.DataFrame(encoder.fit(baskets).transform(baskets), columns=encoder.columns_)
    itemsets = fpgrowth(onehot, min_support=0.05, use_colnames=True, max_len=4)
    theirs = mlxtend_rules(itemsets, num_itemsets=len(baskets), metric="confidence", min_threshold=0.5)
    want = {(r.antecedents, r.consequents): r.confidence for r in theirs.itertuples()}
    got = {
        (frozenset(r.antecedent), frozenset(r.consequent)): r.confidence
        for r in tables.read("gold.association_rules").collect()
    }
    assert len(got) > 10 and set(got) == set(want)
    assert all(got[rule] == pytest.approx(want[rule]) for rule in got)
    assert done.results["analytics"].metrics["kmeans"]["k"] == 3


def test_digits_from_a_pixel_column_csv_train_with_no_conversion_script(spark, tmp_path):
    done, tables = run_example("digits_csv", spark, tmp_path)
    trained = done.results["train"]
    assert trained.rows_quarantined == 1 and trained.status == "warning"  # the "NA" pixel
    (rule,) = [r.rule for r in tables.read("quarantine.rows").filter("stage = 'train'").collect()]
    assert "missing or not numbers" in rule
    cnn = trained.metrics["digits_cnn"]
    # 1,796 real 8x8 digits, levels 0..16 (images.max_level): 0.9625 on 2026-12-06; 0.85 when they
    # were read as 0..255, nearly black
    assert cnn["ranks"] == 2 and cnn["test"]["accuracy"] >= 0.93
    assert [c["name"] for c in cnn["test"]["per_class"]] == [str(d) for d in range(10)]
    assert tables.read("gold.digits").select("height", "width", "channels").distinct().collect() == [
        (8, 8, 1)
    ]


def test_shapes_in_class_folders_grey_and_rgb_train_at_one_shape(spark, tmp_path):
    done, tables = run_example("shapes", spark, tmp_path)
    trained = done.results["train"]
    assert trained.rows_quarantined == 1  # square_broken.png (179 readable files)
    (record,) = [r.record for r in tables.read("quarantine.rows").filter("stage = 'train'").collect()]
    assert "square_broken.png" in record
    cnn = trained.metrics["shapes_cnn"]
    assert [c["name"] for c in cnn["test"]["per_class"]] == ["circle", "square", "triangle"]
    assert cnn["test"]["accuracy"] >= 0.8  # chance is 1/3
    gold = tables.read("gold.shapes")
    assert gold.count() == 179 and gold.select("height", "width", "channels").distinct().collect() == [
        (16, 16, 1)
    ]


def test_machine_readings_train_an_lstm_on_windows_split_by_machine(spark, tmp_path):
    done, tables = run_example("sensors", spark, tmp_path)
    trained = done.results["train"]
    raw = pd.read_csv(EXAMPLES / "sensors" / "landing" / "readings" / "readings.csv")
    assert trained.rows_quarantined == raw.vibration.isna().sum() > 0  # the dropped readings
    lstm = trained.metrics["regime_lstm"]
    assert [c["name"] for c in lstm["test"]["per_class"]] == ["overheating", "steady", "worn"]
    assert lstm["test"]["accuracy"] >= 0.8  # chance is 1/3
    windows = tables.read("gold.readings")
    splits = windows.selectExpr("split_part(window_id, '|', 1) AS machine", "split").distinct()
    assert splits.count() == splits.select("machine").distinct().count() == 60  # a machine, one split
    assert {len(r.values) for r in windows.select("values").collect()} == {20 * 2}


def test_tickets_without_an_id_are_cleaned_then_sorted_into_three_named_queues(spark, tmp_path):
    done, tables = run_example("tickets", spark, tmp_path)
    cleaned = done.results["clean"].metrics["tickets"]
    assert cleaned["rows_in"] == 900 and cleaned["rows_deduplicated"] > 0  # tickets sent twice
    gru = done.results["train"].metrics["queue_gru"]
    assert [c["name"] for c in gru["test"]["per_class"]] == ["account", "billing", "delivery"]
    assert gru["test"]["accuracy"] >= 0.9 and gru["test"]["accuracy"] >= gru["bag_of_words_baseline"] - 0.05
    assert tables.read("gold.tickets").count() == cleaned["rows_out"]
