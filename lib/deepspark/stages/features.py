"""Stage features: silver -> ``gold.customer_features`` (recency, frequency, monetary).

Input: ``silver.orders``, ``silver.customers``. Output: ``gold.customer_features``.
Parameters: none yet (the configurable pyspark.ml Pipeline lands with the analytics issue).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from deepspark.pipeline import Run, StageResult


def customer_rfm(orders: DataFrame, customers: DataFrame) -> DataFrame:
    """Per known customer: days since last order, order count, total and mean spend."""
    valid = orders.filter(F.col("amount") >= 0)
    as_of = valid.agg(F.max("order_ts").alias("as_of"))
    per_customer = valid.groupBy("customer_id").agg(
        F.max("order_ts").alias("last_order_ts"),
        F.count(F.lit(1)).alias("frequency"),
        F.round(F.sum("amount"), 2).alias("monetary"),
        F.round(F.avg(F.size("items")), 3).alias("avg_basket_size"),
    )
    return (
        per_customer.join(customers.select("customer_id", "country"), "customer_id", "inner")
        .crossJoin(as_of)
        .select(
            "customer_id",
            "country",
            F.datediff("as_of", "last_order_ts").alias("recency_days"),
            "frequency",
            "monetary",
            "avg_basket_size",
        )
    )


def build_features(run: Run) -> StageResult:
    orders = run.tables.read("silver.orders")
    customers = run.tables.read("silver.customers")
    written = run.tables.write(
        customer_rfm(orders, customers), "gold.customer_features", mode="overwrite", evolve_schema=True
    )
    return StageResult(
        rows_out=written.rows_written,
        tables={"gold.customer_features": written.version},
        metrics={
            "inputs": {
                "silver.orders": run.tables.version("silver.orders"),
                "silver.customers": run.tables.version("silver.customers"),
            }
        },
    )
