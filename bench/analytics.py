"""Analytics fit times: deepspark vs raw MLlib on the same DataFrame, and vs scikit-learn/mlxtend.

For each size, a fresh process builds three inputs with Spark (4-D points around four centres;
baskets from the sample shop's order generator; ten integer features with a two-class label),
writes them to parquet and caches them. After one untimed warm-up fit of each on a 5,000-row
slice, it times, alternating which goes first:

* k-means (k=4, 20 iterations): ``deepspark.stages.analytics.kmeans.fit_kmeans`` vs ``KMeans.fit``;
* FP-growth (support 0.01, confidence 0.2, itemsets and rules counted): ``rules.mine`` (guard
  included) vs ``FPGrowth.fit``;
* decision tree (depth 5, gini, string label): ``tree.grow_tree`` vs ``StringIndexer`` +
  ``DecisionTreeClassifier`` in a Pipeline;

``--repeats`` times each, and, up to ``--reference-max-rows``, the same fits in scikit-learn /
mlxtend on the collected data (collection not timed). ``bench/run.py`` drives it (``--json``
prints every time measured). Usage:

    .venv/bin/python bench/analytics.py [--rows 100000 1000000 10000000] [--reference-max-rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from stats import json_of, spread, timed

SUPPORT, CONFIDENCE, K, DEPTH = 0.01, 0.2, 4, 5


def measure(rows: int, repeats: int, reference: bool) -> dict:
    """Seconds of every fit: {name: {deepspark: [...], mllib: [...], reference: [...] or None}}."""
    from deepspark.config import load_config
    from deepspark.session import get_spark

    scratch = Path(tempfile.mkdtemp(prefix="deepspark-bench-"))
    config = load_config(
        overrides=[f"run.data_root={scratch / 'data'}", "spark.master=local[2]", "spark.driver_memory=6g"],
        environ={},
    )
    spark = get_spark(config)
    try:
        points, baskets, labelled = inputs(spark, config, rows, scratch)
        result = {}
        for ours, raw, _ in contenders(*[f.limit(5_000) for f in (points, baskets, labelled)], 1).values():
            ours(), raw()  # warm up the JVM's code paths on a slice, untimed
        for name, (ours, raw, ref) in contenders(points, baskets, labelled, config.run.seed).items():
            result[name] = dict(zip(["deepspark", "mllib"], alternating(ours, raw, repeats), strict=True))
            fit = ref() if reference else None
            result[name]["reference"] = [timed(fit) for _ in range(repeats)] if fit else None
        return result
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def inputs(spark, config, rows: int, scratch: Path):
    """The three inputs, written to parquet once and cached, so every fit reads the same rows."""
    from deepspark.stages.generate.retail import Dice, generate_orders
    from pyspark.sql import functions as F

    dice = Dice(config.run.seed)
    centre = dice.integer("centre", 0, K - 1).cast("double")
    points = spark.range(rows).select(
        F.col("id"),
        F.array(*[centre * 4 + (dice.uniform(f"x{d}") - 0.5) * 3 for d in range(4)]).alias("features"),
    )
    baskets = generate_orders(spark, rows, max(1, rows // 5), config.generate, config.run.seed).select(
        "items"
    )
    x = [dice.integer(f"f{d}", 0, 9).cast("double") for d in range(10)]
    signal = ((x[0] + x[1] > 9) != (x[2] > 6)) != dice.chance(0.1, "noise")
    labelled = spark.range(rows).select(
        F.array(*x).alias("features"), F.when(signal, "yes").otherwise("no").alias("label")
    )
    frames = []
    for name, df in [("points", points), ("baskets", baskets), ("labelled", labelled)]:
        df.write.parquet(str(scratch / name))
        frame = spark.read.parquet(str(scratch / name)).cache()
        frame.count()
        frames.append(frame)
    return frames


def contenders(points, baskets, labelled, seed: int) -> dict:
    """name -> (deepspark fit, raw MLlib fit, reference fit), each a zero-argument callable."""
    from deepspark.config import TreeConfig
    from deepspark.stages.analytics import kmeans, rules, tree
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import DecisionTreeClassifier
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import StringIndexer
    from pyspark.ml.fpm import FPGrowth
    from pyspark.ml.functions import array_to_vector

    def ours_kmeans():
        kmeans.fit_kmeans(kmeans.as_vectors(points, "features"), [K], seed, max_iter=20)

    def raw_kmeans():
        KMeans(k=K, seed=seed, maxIter=20).fit(points.select(array_to_vector("features").alias("features")))

    def ours_rules():
        mining = rules.mine(rules.as_baskets(baskets, "items"), SUPPORT, CONFIDENCE, max_itemsets=1_000_000)
        rules.frequent_itemsets(mining).count(), rules.association_rules(mining).count()
        mining.release()

    def raw_rules():
        model = FPGrowth(itemsCol="items", minSupport=SUPPORT, minConfidence=CONFIDENCE).fit(baskets)
        model.freqItemsets.count(), model.associationRules.count()

    tree_config = TreeConfig(features="bench", max_depth=[DEPTH], min_instances_per_node=[1])

    def ours_tree():
        tree.grow_tree(tree.training_frame(labelled, "label", "classifier"), tree_config, seed)

    def raw_tree():
        Pipeline(
            stages=[
                StringIndexer(inputCol="label", outputCol="index"),
                DecisionTreeClassifier(labelCol="index", maxDepth=DEPTH, seed=seed),
            ]
        ).fit(labelled.select(array_to_vector("features").alias("features"), "label"))

    return {
        "kmeans": (ours_kmeans, raw_kmeans, lambda: reference_kmeans(points, seed)),
        "fpgrowth": (ours_rules, raw_rules, lambda: reference_fpgrowth(baskets)),
        "tree": (ours_tree, raw_tree, lambda: reference_tree(labelled)),
    }


def reference_kmeans(points, seed: int):
    import numpy as np
    from sklearn.cluster import KMeans

    x = np.array(points.select("features").toPandas()["features"].tolist())
    return lambda: KMeans(n_clusters=K, n_init=1, max_iter=20, random_state=seed).fit(x)


def reference_fpgrowth(baskets):
    import pandas as pd
    from mlxtend.frequent_patterns import association_rules, fpgrowth
    from mlxtend.preprocessing import TransactionEncoder

    lists = [list(items) for items in baskets.toPandas()["items"]]
    encoder = TransactionEncoder().fit(lists)
    onehot = pd.DataFrame(encoder.transform(lists), columns=encoder.columns_)

    def fit():
        itemsets = fpgrowth(onehot, min_support=SUPPORT, use_colnames=True)
        association_rules(itemsets, num_itemsets=len(lists), metric="confidence", min_threshold=CONFIDENCE)

    return fit


def reference_tree(labelled):
    import numpy as np
    from sklearn.tree import DecisionTreeClassifier

    frame = labelled.toPandas()
    x, y = np.array(frame["features"].tolist()), frame["label"].to_numpy()
    return lambda: DecisionTreeClassifier(max_depth=DEPTH).fit(x, y)


def alternating(ours, raw, repeats: int) -> tuple[list[float], list[float]]:
    """The times of each over ``repeats`` rounds, alternating which goes first."""
    ours_times, raw_times = [], []
    for round_ in range(repeats):
        pair = [(ours, ours_times), (raw, raw_times)]
        for fit, times in pair if round_ % 2 == 0 else pair[::-1]:
            times.append(timed(fit))
    return ours_times, raw_times


def measure_sizes(sizes: list[int], repeats: int, reference_max_rows: int) -> dict[int, dict]:
    """``measure`` at each size, each in a fresh process."""
    command = [
        sys.executable,
        __file__,
        "--repeats",
        str(repeats),
        "--reference-max-rows",
        str(reference_max_rows),
    ]
    return {rows: json_of([*command, "--one", str(rows)], f"analytics at {rows:,} rows") for rows in sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-max-rows", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="print the times as one JSON object")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.repeats, args.one <= args.reference_max_rows)))
        return
    results = measure_sizes(args.rows, args.repeats, args.reference_max_rows)
    if args.json:
        print(json.dumps(results))
        return
    machine = f"{platform.machine()}, Python {platform.python_version()}, local[2]"
    print(f"machine: {machine}; medians of {args.repeats}")
    print(f"{'':10}{'rows':>12}{'deepspark':>11}{'MLlib':>9}{'ratio':>8}{'sklearn/mlxtend':>17}")
    for name in ["kmeans", "fpgrowth", "tree"]:
        for rows, r in results.items():
            ours, raw = spread(r[name]["deepspark"])["median"], spread(r[name]["mllib"])["median"]
            reference = f"{spread(r[name]['reference'])['median']:.2f}" if r[name]["reference"] else "-"
            print(f"{name:10}{rows:>12,}{ours:>11.2f}{raw:>9.2f}{ours / raw:>7.2f}x{reference:>17}")


if __name__ == "__main__":
    main()
