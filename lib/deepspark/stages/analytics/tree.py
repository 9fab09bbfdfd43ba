"""Decision trees: MLlib classifier (gini or entropy) or regressor (variance), tuned over depth
and minimum rows per node, explained as readable if/else rules and named importances.

Input: ``gold.<set>_features`` of each ``analytics.trees.<name>.features`` (its ``features``
array, in original units, and its label). Output: one row per leaf in ``gold.tree_rules``, the
model in ``<data_root>/models/analytics/trees/<name>/``. Parameters: ``analytics.trees``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import DecisionTreeClassifier
from pyspark.ml.evaluation import (
    BinaryClassificationEvaluator,
    MulticlassClassificationEvaluator,
    RegressionEvaluator,
)
from pyspark.ml.feature import StringIndexer
from pyspark.ml.functions import array_to_vector
from pyspark.ml.regression import DecisionTreeRegressor
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder, TrainValidationSplit
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from deepspark.config import TreeConfig

VECTOR, LABEL = "_vector", "_label"


@dataclass
class Split:
    feature: int
    threshold: float
    left: Node  # feature <= threshold
    right: Node


@dataclass
class Leaf:
    prediction: float
    samples: int
    class_counts: list[float] = field(default_factory=list)  # classifiers only

    @property
    def confidence(self) -> float | None:
        """The predicted class's share of the leaf's training rows (classifiers only)."""
        total = sum(self.class_counts)
        return max(self.class_counts) / total if total else None


Node = Split | Leaf


@dataclass
class GrownTree:
    model: PipelineModel  # label indexing (classifier) + the tree
    classes: list[str]  # class names by index; empty for a regressor
    params: dict[str, int]  # the depth and min rows per node that tuning chose

    @property
    def tree(self):
        return self.model.stages[-1]


def training_frame(features: DataFrame, label: str, kind: str) -> DataFrame:
    """``_vector`` from the gold ``features`` array and ``_label``: text for a classifier (indexed
    in the pipeline), a double for a regressor. Rows with no label are left out."""
    target = F.col(f"`{label}`").cast("string" if kind == "classifier" else "double")
    return features.filter(target.isNotNull()).select(
        array_to_vector("features").alias(VECTOR), target.alias(LABEL)
    )


def grow_tree(train: DataFrame, config: TreeConfig, seed: int) -> GrownTree:
    """Fit the tree, choosing depth and min rows per node by TrainValidationSplit or CrossValidator
    (F1 for classifiers, RMSE for regressors); a single candidate is fitted directly."""
    if config.kind == "classifier":
        indexer = StringIndexer(inputCol=LABEL, outputCol="_label_index", stringOrderType="alphabetAsc")
        tree = DecisionTreeClassifier(
            featuresCol=VECTOR,
            labelCol="_label_index",
            impurity=config.impurity,
            maxBins=config.max_bins,
            seed=seed,
        )
        stages = [indexer, tree]
        evaluator = MulticlassClassificationEvaluator(labelCol="_label_index", metricName="f1")
    else:
        tree = DecisionTreeRegressor(
            featuresCol=VECTOR, labelCol=LABEL, impurity="variance", maxBins=config.max_bins, seed=seed
        )
        stages = [tree]
        evaluator = RegressionEvaluator(labelCol=LABEL, metricName="rmse")
    pipeline = Pipeline(stages=stages)
    grid = (
        ParamGridBuilder()
        .addGrid(tree.maxDepth, config.max_depth)
        .addGrid(tree.minInstancesPerNode, config.min_instances_per_node)
        .build()
    )
    if len(grid) == 1:
        model = pipeline.copy(grid[0]).fit(train)
    else:
        tuning = {
            "estimator": pipeline,
            "estimatorParamMaps": grid,
            "evaluator": evaluator,
            "seed": seed,
            "parallelism": config.parallelism,  # candidates fitted at once
        }
        tuner = (
            CrossValidator(numFolds=config.folds, **tuning)
            if config.tuning == "cross_validator"
            else TrainValidationSplit(trainRatio=config.train_ratio, **tuning)
        )
        model = tuner.fit(train).bestModel
    fitted = model.stages[-1]
    classes = list(model.stages[0].labels) if config.kind == "classifier" else []
    params = {"max_depth": fitted.getMaxDepth(), "min_instances_per_node": fitted.getMinInstancesPerNode()}
    return GrownTree(model, classes, params)


def evaluate(grown: GrownTree, test: DataFrame) -> dict:
    """Held-out metrics: accuracy, weighted F1, AUC (two classes) and the confusion matrix for a
    classifier; RMSE, MAE and R2 for a regressor."""
    scored = grown.model.transform(test).cache()
    try:
        if not grown.classes:
            metric = RegressionEvaluator(labelCol=LABEL, predictionCol="prediction")
            return {
                name: metric.evaluate(scored, {metric.metricName: name}) for name in ["rmse", "mae", "r2"]
            }
        multi = MulticlassClassificationEvaluator(labelCol="_label_index", predictionCol="prediction")
        metrics = {name: multi.evaluate(scored, {multi.metricName: name}) for name in ["accuracy", "f1"]}
        if len(grown.classes) == 2:
            binary = BinaryClassificationEvaluator(labelCol="_label_index", rawPredictionCol="rawPrediction")
            metrics["auc"] = binary.evaluate(scored)
        counted = {
            (int(r["_label_index"]), int(r["prediction"])): r["count"]
            for r in scored.groupBy("_label_index", "prediction").count().collect()
        }
        classes = range(len(grown.classes))
        metrics["confusion"] = {
            "classes": grown.classes,
            "counts": [[counted.get((i, j), 0) for j in classes] for i in classes],
        }
        return metrics
    finally:
        scored.unpersist()


def tree_nodes(model) -> Node:
    """The fitted MLlib tree as Python nodes, read from the JVM model (thresholds, leaf counts)."""

    def walk(node) -> Node:
        if node.getClass().getSimpleName() == "InternalNode":
            split = node.split()
            return Split(
                split.featureIndex(), split.threshold(), walk(node.leftChild()), walk(node.rightChild())
            )
        stats = node.impurityStats()
        counts = list(stats.stats()) if model.__class__.__name__.endswith("ClassificationModel") else []
        return Leaf(node.prediction(), int(stats.count()), counts)

    return walk(model._java_obj.rootNode())


def importances(model, names: list[str], top: int = 15) -> list[dict]:
    """The tree's feature importances by name, largest first, zeros left out."""
    weights = model.featureImportances.toArray()
    ranked = sorted(zip(names, weights, strict=True), key=lambda pair: -pair[1])
    return [{"feature": name, "importance": round(float(w), 4)} for name, w in ranked[:top] if w > 0]


def condition(name: str, kind: str, threshold: float, left: bool) -> str:
    """One split in words: ``country=FR`` / ``not country=FR`` for one-hot slots, else a comparison."""
    if kind == "indicator" and 0 < threshold < 1:
        return f"not {name}" if left else name
    return f"{name} {'<=' if left else '>'} {threshold:.4g}"


def render_rules(root: Node, names: list[str], kinds: list[str], classes: list[str]) -> str:
    """The tree as nested if/else text, leaves with their prediction and row count."""
    lines: list[str] = []

    def emit(node: Node, depth: int) -> None:
        pad = "    " * depth
        if isinstance(node, Leaf):
            lines.append(f"{pad}predict {_outcome(node, classes)}")
            return
        name, kind = names[node.feature], kinds[node.feature]
        lines.append(f"{pad}if {condition(name, kind, node.threshold, left=True)}:")
        emit(node.left, depth + 1)
        lines.append(f"{pad}else:  # {condition(name, kind, node.threshold, left=False)}")
        emit(node.right, depth + 1)

    emit(root, 0)
    return "\n".join(lines)


def leaf_rules(root: Node, names: list[str], kinds: list[str], classes: list[str]) -> list[dict]:
    """One row per leaf: the path's conditions joined by AND, the prediction and its support."""
    rows: list[dict] = []

    def visit(node: Node, path: list[str]) -> None:
        if isinstance(node, Leaf):
            rows.append(
                {
                    "leaf": len(rows),
                    "rule": " AND ".join(path) or "(always)",
                    "prediction": classes[int(node.prediction)] if classes else f"{node.prediction:.4g}",
                    "samples": node.samples,
                    "confidence": node.confidence,
                }
            )
            return
        name, kind = names[node.feature], kinds[node.feature]
        visit(node.left, [*path, condition(name, kind, node.threshold, left=True)])
        visit(node.right, [*path, condition(name, kind, node.threshold, left=False)])

    visit(root, [])
    return rows


def _outcome(leaf: Leaf, classes: list[str]) -> str:
    if not classes:
        return f"{leaf.prediction:.4g}  (n={leaf.samples})"
    return f"{classes[int(leaf.prediction)]}  (n={leaf.samples}, {leaf.confidence or 0.0:.0%})"
