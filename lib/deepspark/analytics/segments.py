"""Stage analytics (segmentation): k-means over customer features.

Input: ``gold.customer_features``. Output: ``gold.customer_segments``.
Parameters: ``analytics.k``, ``run.seed``.
"""

from __future__ import annotations

from pyspark.ml import Pipeline
from pyspark.ml.clustering import KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.sql import DataFrame

from deepspark.pipeline import Run, StageResult

FEATURES = ["recency_days", "frequency", "monetary", "avg_basket_size"]


def kmeans_pipeline(k: int, seed: int) -> Pipeline:
    return Pipeline(
        stages=[
            VectorAssembler(inputCols=FEATURES, outputCol="raw", handleInvalid="skip"),
            StandardScaler(inputCol="raw", outputCol="features", withMean=True),
            KMeans(k=k, seed=seed, featuresCol="features", predictionCol="segment"),
        ]
    )


def assign_segments(features: DataFrame, k: int, seed: int) -> tuple[DataFrame, dict]:
    model = kmeans_pipeline(k, seed).fit(features)
    scored = model.transform(features)
    silhouette = ClusteringEvaluator(featuresCol="features", predictionCol="segment").evaluate(scored)
    return scored.select("customer_id", "segment"), {
        "k": k,
        "silhouette": round(silhouette, 4),
        "inertia": round(model.stages[-1].summary.trainingCost, 4),
    }


def segment_customers(run: Run) -> StageResult:
    features = run.tables.read("gold.customer_features").cache()
    segments, metrics = assign_segments(features, run.config.analytics.k, run.config.run.seed)
    written = run.tables.write(segments, "gold.customer_segments", mode="overwrite")
    features.unpersist()
    return StageResult(
        rows_in=features.count(),
        rows_out=written.rows_written,
        tables={"gold.customer_segments": written.version},
        metrics=metrics,
    )
