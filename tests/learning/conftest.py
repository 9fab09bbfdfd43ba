"""Fixtures for the deep-learning tests: digits in bronze, reviews in silver, one folder each."""

from __future__ import annotations

import pytest
from deepspark.stages.generate.digits import write_digits
from deepspark.stages.generate.retail import generate_reviews
from deepspark.tables import Tables
from pyspark.sql import functions as F


def land_digits(spark, tables: Tables, source: str, folder) -> None:
    tables.write(spark.read.parquet(str(write_digits(source, folder))), "bronze.digits", mode="overwrite")


def land_reviews(spark, tables: Tables, config, count: int = 2000) -> None:
    reviews = generate_reviews(spark, count, count, config.generate, config.run.seed)
    tables.write(
        reviews.withColumn("rating", F.col("rating").cast("int")), "silver.reviews", mode="overwrite"
    )


@pytest.fixture
def small_digits(spark, tables, tmp_path):
    """The 1,797 8x8 digits from scikit-learn in bronze."""
    land_digits(spark, tables, "sklearn", tmp_path / "raw")
    return tables
