"""K-means through deepspark against scikit-learn, an independent implementation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from deepspark.stages.analytics.kmeans import SEGMENT, as_vectors, fit_kmeans, profile_segments
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.datasets import make_blobs


@pytest.fixture(scope="module")
def blobs(spark):
    points, _ = make_blobs(n_samples=600, centers=4, n_features=3, cluster_std=1.2, random_state=3)
    rows = [(i, [float(v) for v in p], float(p[0] * 10)) for i, p in enumerate(points)]
    frame = spark.createDataFrame(rows, "id long, features array<double>, spend double")
    return points, as_vectors(frame, "features").cache()


@pytest.mark.parametrize("k", [3, 4, 6])
def test_inertia_within_one_percent_of_scikit_learn(blobs, k):
    points, vectors = blobs
    ours = fit_kmeans(vectors, [k], seed=42)
    theirs = SklearnKMeans(n_clusters=k, n_init=10, random_state=0).fit(points).inertia_
    assert ours.k == k and ours.curve[0]["silhouette"] is None  # a fixed k needs no silhouette
    assert ours.inertia == pytest.approx(theirs, rel=0.01)


def test_a_range_picks_the_best_silhouette_and_records_the_elbow(blobs):
    _, vectors = blobs
    clustering = fit_kmeans(vectors, [2, 3, 4, 5, 6], seed=42)
    assert clustering.k == 4  # four blobs
    assert [p["k"] for p in clustering.curve] == [2, 3, 4, 5, 6]
    best = max(clustering.curve, key=lambda p: p["silhouette"])
    assert best["k"] == 4
    inertias = [p["inertia"] for p in clustering.curve]
    assert inertias == sorted(inertias, reverse=True)  # more centres, less inertia


def test_profiles_are_sizes_and_means_in_original_units(blobs):
    _, vectors = blobs
    scored = fit_kmeans(vectors, [4], seed=42).model.transform(vectors)
    profiles = {r[SEGMENT]: r for r in profile_segments(scored, ["spend"]).collect()}
    local = pd.DataFrame(scored.select(SEGMENT, "spend").collect(), columns=[SEGMENT, "spend"])
    for segment, group in local.groupby(SEGMENT):
        assert profiles[segment]["size"] == len(group)
        assert profiles[segment]["mean_spend"] == pytest.approx(group.spend.mean(), abs=1e-3)
    assert sum(p["share"] for p in profiles.values()) == pytest.approx(1.0, abs=1e-3)
    assert np.isclose(sum(p["size"] for p in profiles.values()), 600)
