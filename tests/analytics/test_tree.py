"""Decision trees through deepspark against scikit-learn, and the rules they are explained by."""

from __future__ import annotations

import numpy as np
import pytest
from deepspark.config import TreeConfig
from deepspark.stages.analytics.tree import (
    Leaf,
    Split,
    condition,
    evaluate,
    grow_tree,
    importances,
    leaf_rules,
    render_rules,
    training_frame,
    tree_nodes,
)
from sklearn.metrics import accuracy_score, mean_squared_error
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor


def integer_data(n: int, seed: int = 11):
    """Integer features (fewer values than MLlib's bins, so both libraries see every split) and a
    label that needs depth: (x0 + x1 > 9) xor (x2 > 6), with 10% of labels flipped."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 10, size=(n, 6)).astype(float)
    y = ((x[:, 0] + x[:, 1] > 9) ^ (x[:, 2] > 6)).astype(int)
    flip = rng.random(n) < 0.1
    return x, np.where(flip, 1 - y, y)


def as_gold(spark, x, label):
    kind = "string" if label.dtype.kind == "U" else "double"
    as_value = str if kind == "string" else float
    rows = [([float(v) for v in features], as_value(value)) for features, value in zip(x, label, strict=True)]
    return spark.createDataFrame(rows, f"features array<double>, label {kind}")


@pytest.mark.parametrize("impurity", ["gini", "entropy"])
@pytest.mark.parametrize("depth", [3, 5])
def test_classifier_accuracy_within_one_point_of_scikit_learn(spark, impurity, depth):
    x, y = integer_data(3000)
    names = np.array(["no", "yes"])[y]
    config = TreeConfig(features="t", impurity=impurity, max_depth=[depth], min_instances_per_node=[1])
    train = training_frame(as_gold(spark, x[:2400], names[:2400]), "label", "classifier")
    test = training_frame(as_gold(spark, x[2400:], names[2400:]), "label", "classifier")
    grown = grow_tree(train, config, seed=1)
    ours = evaluate(grown, test)

    reference = DecisionTreeClassifier(criterion=impurity, max_depth=depth, random_state=0).fit(
        x[:2400], y[:2400]
    )
    theirs = accuracy_score(y[2400:], reference.predict(x[2400:]))
    assert grown.classes == ["no", "yes"] and grown.params["max_depth"] == depth
    assert abs(ours["accuracy"] - theirs) <= 0.01, (ours["accuracy"], theirs)
    assert sum(map(sum, ours["confusion"]["counts"])) == 600 and 0.5 < ours["auc"] <= 1.0


def test_regressor_rmse_close_to_scikit_learn(spark):
    x, _ = integer_data(2000, seed=5)
    y = 3 * x[:, 0] + np.where(x[:, 1] > 4, 20.0, 0.0) + np.random.default_rng(5).normal(0, 1, 2000)
    config = TreeConfig(
        features="t", kind="regressor", impurity="variance", max_depth=[4], min_instances_per_node=[1]
    )
    train = training_frame(as_gold(spark, x[:1600], y[:1600]), "label", "regressor")
    test = training_frame(as_gold(spark, x[1600:], y[1600:]), "label", "regressor")
    ours = evaluate(grow_tree(train, config, seed=1), test)
    reference = DecisionTreeRegressor(max_depth=4, random_state=0).fit(x[:1600], y[:1600])
    theirs = mean_squared_error(y[1600:], reference.predict(x[1600:])) ** 0.5
    assert ours["rmse"] == pytest.approx(theirs, rel=0.05) and ours["r2"] > 0.9


def test_tuning_picks_from_the_grid_and_importances_are_named(spark):
    x, y = integer_data(1500)
    config = TreeConfig(features="t", max_depth=[1, 4], min_instances_per_node=[1, 5])
    grown = grow_tree(
        training_frame(as_gold(spark, x, np.array(["no", "yes"])[y]), "label", "classifier"), config, 3
    )
    assert grown.params["max_depth"] == 4  # depth 1 cannot express an xor
    names = [f"x{i}" for i in range(6)]
    ranked = importances(grown.tree, names)
    assert {r["feature"] for r in ranked[:3]} == {"x0", "x1", "x2"}  # the label's own inputs
    root = tree_nodes(grown.tree)
    leaves = leaf_rules(root, names, ["numeric"] * 6, grown.classes)
    assert sum(leaf["samples"] for leaf in leaves) == 1500  # every training row ends in one leaf


def test_rules_read_as_if_else_with_named_features_and_one_hot_slots_in_words():
    tree = Split(
        feature=1,
        threshold=0.5,
        left=Split(feature=0, threshold=30.5, left=Leaf(1.0, 40, [4, 36]), right=Leaf(0.0, 60, [51, 9])),
        right=Leaf(0.0, 25, [25, 0]),
    )
    names, kinds = ["recency_days", "country=FR"], ["numeric", "indicator"]
    text = render_rules(tree, names, kinds, ["churned", "stays"])
    assert text.splitlines() == [
        "if not country=FR:",
        "    if recency_days <= 30.5:",
        "        predict stays  (n=40, 90%)",
        "    else:  # recency_days > 30.5",
        "        predict churned  (n=60, 85%)",
        "else:  # country=FR",
        "    predict churned  (n=25, 100%)",
    ]
    leaves = leaf_rules(tree, names, kinds, ["churned", "stays"])
    assert [(leaf["rule"], leaf["prediction"], leaf["samples"]) for leaf in leaves] == [
        ("not country=FR AND recency_days <= 30.5", "stays", 40),
        ("not country=FR AND recency_days > 30.5", "churned", 60),
        ("country=FR", "churned", 25),
    ]
    assert condition("text:awful", "text", 1.2, left=False) == "text:awful > 1.2"
