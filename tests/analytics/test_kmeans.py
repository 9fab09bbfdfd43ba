"""K-means through deepspark against scikit-learn, an independent implementation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from deepspark.config import KMeansConfig
from deepspark.stages.analytics.kmeans import SEGMENT, as_vectors, fit_kmeans, profile_segments
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler


@pytest.fixture(scope="module")
def blobs(spark):
    points, _ = make_blobs(n_samples=600, centers=4, n_features=3, cluster_std=1.2, random_state=3)
    rows = [(i, [float(v) for v in p], float(p[0] * 10)) for i, p in enumerate(points)]
    frame = spark.createDataFrame(rows, "id long, features array<double>, spend double")
    return points, as_vectors(frame, "features").cache()


@pytest.fixture(scope="module")
def uneven(spark):
    """Five clusters of 800 down to 20 points, of different spreads, standardised as the features
    stage scales them: where one k-means fit often lands in a poor local minimum."""
    points, _ = make_blobs(
        n_samples=[800, 300, 120, 50, 20], n_features=4, cluster_std=[1.0, 2.0, 0.5, 1.5, 0.8], random_state=5
    )
    points = StandardScaler().fit_transform(points)
    frame = spark.createDataFrame(
        [(i, [float(v) for v in p]) for i, p in enumerate(points)], "id long, f array<double>"
    )
    return points, as_vectors(frame, "f").cache()


@pytest.mark.slow  # 42 fits
def test_inertia_at_every_k_within_one_percent_of_scikit_learns_best_of_ten(uneven):
    points, vectors = uneven
    defaults = KMeansConfig(features="x")  # the restarts and init steps a user gets
    ours = fit_kmeans(
        vectors,
        list(range(2, 9)),
        42,
        defaults.max_iter,
        defaults.n_init,
        defaults.init_steps,
        defaults.parallelism,
    )
    single = fit_kmeans(vectors, list(range(2, 9)), 42, defaults.max_iter)  # MLlib's one fit per k
    misses = 0
    for point, once in zip(ours.curve, single.curve, strict=True):
        theirs = SklearnKMeans(n_clusters=point["k"], n_init=10, random_state=0).fit(points).inertia_
        assert point["inertia"] <= theirs * 1.01, point
        misses += once["inertia"] > theirs * 1.01
    assert misses >= 1  # the data is hard enough that one fit per k is not


def test_a_range_picks_the_best_silhouette_and_records_the_elbow(blobs):
    _, vectors = blobs
    clustering = fit_kmeans(vectors, [2, 3, 4, 5, 6], seed=42)
    assert clustering.k == 4  # four blobs
    assert [p["k"] for p in clustering.curve] == [2, 3, 4, 5, 6]
    best = max(clustering.curve, key=lambda p: p["silhouette"])
    assert best["k"] == 4
    inertias = [p["inertia"] for p in clustering.curve]
    assert inertias == sorted(inertias, reverse=True)  # more centres, less inertia


def test_fits_on_parallel_threads_choose_the_same_model_as_one_at_a_time(blobs):
    _, vectors = blobs
    one, two = (fit_kmeans(vectors, [3, 4], 7, 10, 2, 2, parallelism) for parallelism in (1, 2))
    assert two.curve == one.curve and two.k == one.k == 4
    assert [list(c) for c in two.model.clusterCenters()] == [list(c) for c in one.model.clusterCenters()]
    assert one.curve[0]["inertia"] > one.curve[1]["inertia"]  # two different fits, not one repeated


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
