"""The analytics stage's own refusals: what a run says when the data cannot support the config."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from deepspark.config import ConfigError, load_config
from deepspark.run import Run, StageResult
from deepspark.stages.analytics.stage import analyze, grow_one_tree, mine_rules
from deepspark.stages.features import build_feature_set
from deepspark.tables import Tables


def configured(tmp_path, *overrides):
    folders = [f"run.data_root={tmp_path / 'data'}", f"run.runs_dir={tmp_path / 'runs'}"]
    return load_config(env="local", overrides=[*folders, *overrides], environ={})


def reviews(spark, ratings):
    rows = [(i, "tea", r, "fine tea", datetime(2024, 1, 1 + i % 28)) for i, r in enumerate(ratings)]
    return spark.createDataFrame(
        rows, "review_id long, product string, rating long, text string, posted_at timestamp"
    )


def test_a_classifier_on_a_label_with_one_class_is_refused_naming_the_tree(spark, tmp_path):
    config = configured(tmp_path)
    tables = Tables(spark, config)
    tables.write(reviews(spark, [5, 4] * 20), "silver.reviews", mode="overwrite")  # all positive
    build_feature_set(tables, config, "reviews", config.features.sets["reviews"])
    run = Run(config, spark, tables, "one-class")
    with pytest.raises(ConfigError) as error:
        grow_one_tree(run, "review_sentiment", config.analytics.trees["review_sentiment"])
    assert str(error.value).endswith(
        "key 'analytics.trees.review_sentiment.features' = 'reviews': label 'sentiment' of "
        "gold.reviews_features has a single class (positive); expected at least two for a classifier"
    )
    assert "analytics.yaml" in str(error.value)

    tables.write(reviews(spark, [5, 1] * 20), "silver.reviews", mode="overwrite")  # now two classes
    build_feature_set(tables, config, "reviews", config.features.sets["reviews"])
    summary, leaves = grow_one_tree(run, "review_sentiment", config.analytics.trees["review_sentiment"])
    assert summary["rows"] == 40 and leaves
    # The held-out accuracy is the confusion matrix's: its diagonal over the held-out rows.
    confusion = summary["metrics"]["confusion"]
    held_out = sum(map(sum, confusion["counts"]))
    assert sorted(confusion["classes"]) == ["not positive", "positive"] and 0 < held_out < 40
    hits = sum(confusion["counts"][i][i] for i in range(2))
    assert summary["metrics"]["accuracy"] == pytest.approx(hits / held_out, abs=1e-4)


def orders(spark, baskets):
    return spark.createDataFrame(
        [(i, b) for i, b in enumerate(baskets)], "order_id long, items array<string>"
    )


def test_itemset_explosion_stops_the_stage_with_a_support_to_try(spark, tmp_path):
    config = configured(tmp_path, "analytics.rules.min_support=0.01", "analytics.rules.max_itemsets=50")
    tables = Tables(spark, config)
    baskets = [[f"p{(i + j) % 12}" for j in range(1 + i % 5)] for i in range(400)]
    tables.write(orders(spark, baskets), "silver.orders", mode="overwrite")
    run = Run(config, spark, tables, "explode")
    with pytest.raises(ConfigError) as error:
        mine_rules(run, config.analytics.rules, StageResult())
    message = str(error.value)
    assert message.startswith(
        "--set analytics.rules.min_support=0.01: key 'analytics.rules.min_support' = 0.01: "
    )
    assert (
        "yields more than 50 frequent itemsets (analytics.rules.max_itemsets); expected a higher" in message
    )
    suggested = float(message.rsplit("e.g. ", 1)[1].rstrip(")"))
    fine = configured(tmp_path, f"analytics.rules.min_support={suggested}", "analytics.rules.max_itemsets=50")
    mined = mine_rules(Run(fine, spark, tables, "fits"), fine.analytics.rules, StageResult())
    assert mined["itemsets"] == mined["itemset_estimate"] <= 50 and mined["estimate_kind"] == "exact"


def test_baskets_must_be_an_array_column(spark, tmp_path):
    config = configured(tmp_path, "analytics.rules.items=order_id")
    tables = Tables(spark, config)
    tables.write(orders(spark, [["a"]]), "silver.orders", mode="overwrite")
    with pytest.raises(
        ConfigError, match=r"key 'analytics.rules.items' = 'order_id': expected an array column"
    ):
        mine_rules(Run(config, spark, tables, "r"), config.analytics.rules, StageResult())


def test_a_rerun_on_the_same_inputs_keeps_the_results_and_new_data_or_config_redo_them(spark, tmp_path):
    config = configured(tmp_path, "analytics.rules.min_support=0.05")
    tables = Tables(spark, config)
    baskets = [["tea", "cup"], ["tea", "cup", "pot"], ["tea"], ["cup", "pot"]] * 25
    tables.write(orders(spark, baskets), "silver.orders", mode="overwrite")

    def rules_of(run_id: str, settings=config):
        return analyze(Run(settings, spark, tables, run_id, parts=("rules",)))

    first = rules_of("first")
    again = rules_of("again")
    assert not first.notes and again.notes == [
        "rules: inputs and config unchanged since run first; its results kept"
    ]
    assert again.tables == first.tables and again.rows_in == first.rows_in == 100
    assert tables.version("gold.association_rules") == first.tables["gold.association_rules"]
    kept, made = again.metrics["rules"], first.metrics["rules"]
    assert kept["top_by_lift"] == made["top_by_lift"] and kept["rules"] == made["rules"] > 0
    top = made["top_by_lift"][0]
    assert (
        first.details
        == again.details
        == [  # the console's line, kept results alike
            f"rules: {made['rules']} rule(s) from {made['itemsets']} frequent itemset(s) in 100 baskets; "
            f"top lift {top['lift']:.2f}: {', '.join(top['antecedent'])} -> {', '.join(top['consequent'])}"
        ]
    )
    (plot,) = kept["plots"]  # copied into this run's own folder, the same picture
    assert Path(plot).parent == tmp_path / "runs" / "again" / "analytics"
    assert Path(plot).read_bytes() == Path(made["plots"][0]).read_bytes()

    tables.write(orders(spark, [["tea", "pot"]]), "silver.orders")  # one more basket landed
    redone = rules_of("new-data")
    assert not redone.notes and redone.rows_in == 101
    assert redone.tables["gold.association_rules"] > first.tables["gold.association_rules"]
    stricter = configured(tmp_path, "analytics.rules.min_support=0.05", "analytics.rules.min_confidence=0.9")
    assert not rules_of("new-config", stricter).notes
    assert rules_of("same-again", stricter).notes  # and kept once more for that config


def test_a_tree_that_is_one_leaf_is_a_warning_saying_what_to_try_also_when_kept(spark, tmp_path):
    configured_trees = configured(
        tmp_path,
        "features.sets.flat={input: silver.flat, key: id, label: y, numeric: [x]}",
        "analytics.trees.flat={features: flat, kind: regressor, impurity: variance}",
    )
    only_flat = configured_trees.analytics.model_copy(
        update={"trees": {"flat": configured_trees.analytics.trees["flat"]}}
    )
    config = configured_trees.model_copy(update={"analytics": only_flat})
    tables = Tables(spark, config)
    rows = [(i, float(i % 7), float(i % 2)) for i in range(40)]  # y alternates: x (i mod 7) cannot tell it
    tables.write(spark.createDataFrame(rows, "id long, x double, y double"), "silver.flat", mode="overwrite")
    build_feature_set(tables, config, "flat", config.features.sets["flat"])

    first = analyze(Run(config, spark, tables, "one-leaf", parts=("trees",)))
    again = analyze(Run(config, spark, tables, "kept", parts=("trees",)))
    assert first.metrics["trees"]["flat"]["leaves"] == 1
    scores = first.metrics["trees"]["flat"]["metrics"]
    assert first.details == [
        f"tree flat: test RMSE {scores['rmse']:.4g} (R² {scores['r2']:.3f}), 1 leaf, 40 rows"
    ]
    (warning,) = first.notes
    assert first.status == again.status == "warning" and warning in again.notes
    assert warning.startswith(
        "tree flat: a single leaf, the same prediction for every row: no split of the 40 rows"
    )
    assert warning.endswith(
        "the features may not tell 'y', or the rows are too few: "
        "try a smaller analytics.trees.flat.min_instances_per_node or more features"
    )
