"""What the own-data analytics cost against the plain MLlib call a user would make instead.

* **Rules** on long baskets (``--baskets``, 100,000 by default, about 30 items each: 7 of a
  themed set of 10 plus 23 of 500 others): ``rules.mine`` (the guard included: a bound, then an
  exact count on a 5,000-basket sample) + ``frequent_itemsets`` + ``association_rules`` with
  consequents of any size, vs ``FPGrowth.fit`` + ``freqItemsets`` + ``associationRules`` (one-item
  consequents only), both counted, at support 0.01 and confidence 0.3.
* **k-means with restarts** (``--points`` 4-D points around four centres, k=4): ``fit_kmeans``
  with the defaults (``n_init`` 5, ``init_steps`` 5) vs one ``KMeans.fit`` (MLlib's defaults).

Both inputs are written to parquet and cached first; one untimed warm-up of each contender on a
slice; then ``--repeats`` rounds, alternating which goes first. Prints one JSON object (the
times, min/median/max and the ratios). Usage:

    .venv/bin/python bench/own_data.py [--baskets 100000] [--points 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path

from analytics import alternating
from stats import spread

SUPPORT, CONFIDENCE, K = 0.01, 0.3, 4


def long_baskets(spark, rows: int, seed: int):
    """Baskets of about 30 items: a theme (of 20) gives each of its 10 items with chance 0.7,
    and each of 500 other products comes with chance 0.046 (hash-based, so reproducible)."""
    from pyspark.sql import functions as F

    def chance(salt: str, i, share: float):
        return (F.abs(F.xxhash64(F.col("id"), F.lit(salt), i, F.lit(seed))) % 10_000) < int(share * 10_000)

    theme = (F.abs(F.xxhash64(F.col("id"), F.lit("theme"), F.lit(seed))) % 20).cast("string")
    themed = F.transform(
        F.sequence(F.lit(0), F.lit(9)),
        lambda i: F.when(chance("t", i, 0.7), F.concat(F.lit("t"), theme, F.lit("_"), i.cast("string"))),
    )
    others = F.transform(
        F.sequence(F.lit(0), F.lit(499)),
        lambda i: F.when(chance("p", i, 0.046), F.concat(F.lit("p"), i.cast("string"))),
    )
    items = F.filter(F.concat(themed, others), lambda item: item.isNotNull())
    return spark.range(rows).select(items.alias("items"))


def points_around_centres(spark, rows: int, seed: int):
    from pyspark.sql import functions as F

    centre = (F.abs(F.xxhash64(F.col("id"), F.lit(seed))) % K).cast("double")
    return spark.range(rows).select(
        F.array(*[centre * 4 + (F.rand(seed + d) - 0.5) * 3 for d in range(4)]).alias("features")
    )


def measure(baskets_n: int, points_n: int, repeats: int) -> dict:
    from deepspark.config import KMeansConfig, load_config
    from deepspark.session import get_spark
    from deepspark.stages.analytics import kmeans, rules
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.fpm import FPGrowth
    from pyspark.ml.functions import array_to_vector

    scratch = Path(tempfile.mkdtemp(prefix="deepspark-bench-"))
    config = load_config(
        overrides=[f"run.data_root={scratch / 'data'}", "spark.master=local[2]", "spark.driver_memory=6g"],
        environ={},
    )
    spark = get_spark(config)
    seed = config.run.seed
    try:
        frames = {}
        for name, df in (
            ("baskets", long_baskets(spark, baskets_n, seed)),
            ("points", points_around_centres(spark, points_n, seed)),
        ):
            df.write.parquet(str(scratch / name))
            frames[name] = spark.read.parquet(str(scratch / name)).cache()
            frames[name].count()
        baskets = frames["baskets"]
        vectors = kmeans.as_vectors(frames["points"], "features").cache()
        raw_points = frames["points"].select(array_to_vector("features").alias("features")).cache()
        defaults = KMeansConfig(features="bench")
        shape = {"baskets": baskets_n, "mean_items": baskets.selectExpr("avg(size(items))").first()[0]}
        counts = {}

        def ours_rules(frame=baskets):
            mining = rules.mine(rules.as_baskets(frame, "items"), SUPPORT, CONFIDENCE, max_itemsets=1_000_000)
            counts["itemsets"] = rules.frequent_itemsets(mining).count()
            counts["rules"] = rules.association_rules(mining).count()
            counts["guard"] = mining.estimate_kind
            mining.release()

        def raw_rules(frame=baskets):
            model = FPGrowth(itemsCol="items", minSupport=SUPPORT, minConfidence=CONFIDENCE).fit(frame)
            counts["mllib_itemsets"] = model.freqItemsets.count()
            counts["mllib_rules"] = model.associationRules.count()

        def ours_kmeans(frame=vectors):
            kmeans.fit_kmeans(frame, [K], seed, defaults.max_iter, defaults.n_init, defaults.init_steps)

        def raw_kmeans(frame=raw_points):
            KMeans(k=K, seed=seed).fit(frame)

        slice_ = baskets.limit(5_000).cache()
        (
            ours_rules(slice_),
            raw_rules(slice_),
            ours_kmeans(vectors.limit(5_000)),
            raw_kmeans(raw_points.limit(5_000)),
        )
        result = {"shape": {**shape, "points": points_n}}
        for name, ours, raw in (("rules", ours_rules, raw_rules), ("kmeans", ours_kmeans, raw_kmeans)):
            mine, theirs = alternating(ours, raw, repeats)
            result[name] = {
                "deepspark": spread(mine),
                "mllib": spread(theirs),
                "ratio": statistics.median(mine) / statistics.median(theirs),
            }
        result["rules"]["counts"] = counts
        return result
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baskets", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.baskets, args.points, args.repeats)))


if __name__ == "__main__":
    main()
