"""K-means segmentation: k fixed, or chosen over a range by silhouette (the elbow kept too); at
each k the best (least inertia) of ``n_init`` fits from different seeds, as scikit-learn does.

Input: ``gold.<set>_features`` of ``analytics.kmeans.features``, at the version the features
stage wrote. Output: ``gold.customer_segments`` (key, segment), ``gold.segment_profiles`` (size,
share and the mean of each profile column in its own units), the model in
``<data_root>/models/analytics/kmeans/``. Parameters: ``analytics.kmeans``, ``run.seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.pool import ThreadPool

import pandas as pd
from pyspark import inheritable_thread_target
from pyspark.ml.clustering import KMeans, KMeansModel
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import PCA
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

VECTOR, SEGMENT = "_vector", "segment"


@dataclass
class Clustering:
    model: KMeansModel
    k: int
    inertia: float  # sum of squared distances to the nearest centre (scikit-learn's inertia_)
    curve: list[dict]  # per k tried: k, inertia, silhouette (None when k was fixed)


def as_vectors(features: DataFrame, column: str) -> DataFrame:
    """The gold table with its array column as an MLlib vector in ``_vector``."""
    return features.withColumn(VECTOR, array_to_vector(column))


def fit_kmeans(
    vectors: DataFrame,
    k_values: list[int],
    seed: int,
    max_iter: int = 20,
    n_init: int = 1,
    init_steps: int = 2,
    parallelism: int = 1,
) -> Clustering:
    """Per k, the least-inertia model of ``n_init`` fits (seeds ``seed``, ``seed + 1``, ...; each
    k-means|| with ``init_steps`` steps); over a range, the best silhouette wins (ties: the
    smaller k). The silhouette is MLlib's, with squared Euclidean distance.

    The fits, and then the silhouettes, run ``parallelism`` at a time on threads of this
    session, as pyspark.ml's tuning runs its candidates: each fit is seeded, so the result is the
    same at any parallelism, and on small tables, where a fit is many short Spark jobs, the
    driver's waits between jobs overlap (figures in the README's analytics section)."""
    evaluator = ClusteringEvaluator(featuresCol=VECTOR, predictionCol=SEGMENT)
    points = vectors.select(VECTOR)  # all KMeans reads: the other columns stay out of its cache

    def fit(k_and_start: tuple[int, int]) -> KMeansModel:
        k, start = k_and_start
        estimator = KMeans(
            k=k,
            seed=seed + start,
            maxIter=max_iter,
            initSteps=init_steps,
            featuresCol=VECTOR,
            predictionCol=SEGMENT,
        )
        return estimator.fit(points)

    def score(model: KMeansModel) -> float:
        return evaluator.evaluate(model.transform(vectors))

    runs = [(k, start) for k in k_values for start in range(n_init)]
    in_session = inheritable_thread_target(vectors.sparkSession)  # its job group and tags too
    with ThreadPool(max(1, min(parallelism, len(runs)))) as pool:
        fits = pool.map(in_session(fit), runs)
        models = [  # per k, in order: the first of the least inertia
            min(fits[i * n_init : (i + 1) * n_init], key=lambda candidate: candidate.summary.trainingCost)
            for i in range(len(k_values))
        ]
        # Only a range needs them to choose; a fixed k's is taken from the clustered rows later.
        silhouettes = pool.map(in_session(score), models) if len(k_values) > 1 else [None]
    best: tuple[float, KMeansModel] | None = None
    curve = []
    for k, model, silhouette in zip(k_values, models, silhouettes, strict=True):
        curve.append({"k": k, "inertia": model.summary.trainingCost, "silhouette": silhouette})
        if best is None or (silhouette or 0.0) > best[0]:
            best = (silhouette or 0.0, model)
    model = best[1]
    return Clustering(model, model.getK(), model.summary.trainingCost, curve)


def silhouette(scored: DataFrame) -> float:
    return ClusteringEvaluator(featuresCol=VECTOR, predictionCol=SEGMENT).evaluate(scored)


def profile_segments(scored: DataFrame, columns: list[str]) -> DataFrame:
    """Per segment: size, share of all rows and the mean of each column in its own units."""
    total = F.sum("size").over(Window.partitionBy())  # k rows: one partition is fine
    return (
        scored.groupBy(SEGMENT)
        .agg(F.count(F.lit(1)).alias("size"), *[F.round(F.avg(c), 3).alias(f"mean_{c}") for c in columns])
        .withColumn("share", F.round(F.col("size") / total, 4))
        .orderBy(SEGMENT)
    )


def project_2d(scored: DataFrame, rows: int, sample: int, seed: int) -> pd.DataFrame:
    """A 2-D PCA of the ``rows`` clustered vectors (at most ``sample`` points) for the cluster plot."""
    pca = PCA(k=2, inputCol=VECTOR, outputCol="_pc").fit(scored)
    fraction = min(1.0, sample / max(1, rows))
    points = pca.transform(scored.sample(fraction=fraction, seed=seed)).select(
        SEGMENT, F.col("_pc").alias("pc")
    )
    rows = [(r[SEGMENT], float(r.pc[0]), float(r.pc[1])) for r in points.limit(sample).collect()]
    return pd.DataFrame(rows, columns=[SEGMENT, "pc1", "pc2"])
