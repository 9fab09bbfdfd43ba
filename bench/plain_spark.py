"""The job a data engineer would write instead of deepspark: plain PySpark and Delta, no deepspark
import, the sample shop's rules written out by hand (conf/base/ingest.yaml and clean.yaml).

Same semantics as deepspark's ingest and clean on the shop's landing files: bronze keeps every
record (a malformed one with its raw text); clean trims and lower/upper-cases text, drops exact
copies, types each column, sends each row that breaks a rule to quarantine with the first rule's
reason, quarantines orders of unknown customers, caps amount's outliers (3 IQR), fills nulls
(median amount, most frequent channel, country ``??``), keeps the latest row per key and
protects PII (HMAC-SHA256 e-mail, masked phone, age band, postcode area). ``features`` is the
``customer_activity`` aggregation of conf/base/features.yaml, written as a Delta table.

``anchors.py`` runs it and checks its silver and quarantine equal to deepspark's.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from stats import timed

CORRUPT = "_corrupt_record"
CUSTOMERS = ["customer_id", "first_name", "last_name", "email", "phone", "birth_date", "postcode", "country"]
CUSTOMERS += ["signup_ts"]
REVIEWS = ["review_id", "customer_id", "product", "rating", "text", "posted_at"]
ORDERS_DDL = "order_id string, customer_id string, order_ts string, items array<string>, amount string, "
ORDERS_DDL += f"channel string, {CORRUPT} string"
AGE_BANDS = [(18, "<18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64")]


def session(master: str, driver_memory: str, shuffle_partitions: int, jars: list[Path], scratch: Path):
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python workers in this venv
    return (
        SparkSession.builder.master(master)
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.local.dir", str(scratch / "local"))
        .config("spark.ui.enabled", "false")
        .config("spark.jars", ",".join(map(str, jars)))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .getOrCreate()
    )


# ---------------------------------------------------------------- ingest


def utf8_or_latin1(value: Column) -> Column:
    """A value read as Latin-1 (bytes kept): its UTF-8 text when valid, else its Latin-1 text."""
    raw = F.encode(value, "ISO-8859-1")
    return F.when(F.is_valid_utf8(raw.cast("string")), raw.cast("string")).otherwise(value)


def read_csv(spark: SparkSession, folder: Path, columns: list[str], **options) -> DataFrame:
    schema = ", ".join(f"{c} string" for c in columns) + f", {CORRUPT} string"
    df = (
        spark.read.schema(schema)
        .options(header="true", mode="PERMISSIVE", encoding="ISO-8859-1", recursiveFileLookup="true")
        .options(columnNameOfCorruptRecord=CORRUPT, **options)
        .csv(str(folder))
    )
    return df.select(*[utf8_or_latin1(F.col(c)).alias(c) for c in columns], CORRUPT)


def read_orders(spark: SparkSession, folder: Path) -> DataFrame:
    lines = spark.read.option("recursiveFileLookup", "true").text(str(folder)).filter(F.trim("value") != "")
    line = utf8_or_latin1(F.col("value"))
    parsed = lines.select(
        F.from_json(line, ORDERS_DDL, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}).alias("p")
    )
    bad = F.col(f"p.{CORRUPT}").isNotNull()
    names = [c.split()[0] for c in ORDERS_DDL.split(", ") if not c.startswith(CORRUPT)]
    return parsed.select(*[F.when(~bad, F.col(f"p.{c}")).alias(c) for c in names], F.col(f"p.{CORRUPT}"))


def to_bronze(df: DataFrame, path: Path) -> None:
    content = [c for c in df.columns if c != CORRUPT]
    df.select(
        *content,
        F.col(CORRUPT).alias("_raw_record"),
        F.input_file_name().alias("_source_file"),
        F.current_timestamp().alias("_ingested_at"),
        F.sha2(F.to_json(F.struct(*content, CORRUPT)), 256).alias("_row_hash"),
    ).write.format("delta").mode("append").save(str(path))


def ingest(spark: SparkSession, landing: Path, out: Path) -> None:
    to_bronze(read_csv(spark, landing / "customers", CUSTOMERS), out / "bronze" / "customers")
    to_bronze(read_orders(spark, landing / "orders"), out / "bronze" / "orders")
    to_bronze(read_csv(spark, landing / "reviews", REVIEWS, escape='"'), out / "bronze" / "reviews")


# ---------------------------------------------------------------- clean


def first_broken(checks: list[tuple[Column, str, str]]) -> tuple[Column, Column]:
    """The reason and rule of the first check a row fails (null when it passes all)."""
    reason, rule = F.when(F.lit(False), F.lit(None)), F.when(F.lit(False), F.lit(None))
    for failed, code, text in checks:
        reason, rule = reason.when(failed, F.lit(code)), rule.when(failed, F.lit(text))
    return reason, rule


def timestamp(column: str, *formats: str) -> Column:
    return F.coalesce(*[F.try_to_timestamp(F.col(column), F.lit(f)) for f in formats])


def with_known_customer(typed: DataFrame, customers: DataFrame) -> DataFrame:
    """``typed`` with ``is_known``: true where its ``customer`` is in silver.customers, else null."""
    known = customers.select(F.col("customer_id").alias("known"), F.lit(True).alias("is_known")).distinct()
    return typed.join(known, F.col("customer") == F.col("known"), "left")


def latest_per_key(df: DataFrame, key: str, order_by: str) -> DataFrame:
    window = Window.partitionBy(key).orderBy(F.col(order_by).desc_nulls_last(), "_row_hash")
    ranked = df.withColumn("_n", F.row_number().over(window))
    return ranked.filter("_n = 1").drop("_n")


def split(df: DataFrame, checks: list[tuple[Column, str, str]], dataset: str):
    """(accepted rows, rejected rows with reason and rule); bronze's malformed rows rejected first."""
    reason, rule = first_broken(
        [(F.col("_raw_record").isNotNull(), "malformed", "malformed record"), *checks]
    )
    tagged = df.withColumns({"_reason": reason, "_rule": rule}).persist()
    accepted = tagged.filter(F.col("_reason").isNull()).drop("_reason", "_rule")
    rejected = tagged.filter(F.col("_reason").isNotNull()).select(
        F.lit(dataset).alias("dataset"),
        "_row_hash",
        F.col("_reason").alias("reason"),
        F.col("_rule").alias("rule"),
    )
    return accepted, rejected, tagged


def clean_customers(bronze: DataFrame, key: bytes) -> tuple[DataFrame, DataFrame, DataFrame]:
    df = bronze.select(
        *[F.trim(c).alias(c) for c in ["customer_id", "first_name", "last_name", "phone", "postcode"]],
        F.lower(F.trim("email")).alias("email"),
        F.trim("birth_date").alias("birth_text"),
        F.upper(F.trim("country")).alias("country"),
        F.trim("signup_ts").alias("signup_text"),
        "_raw_record",
        "_row_hash",
    ).dropDuplicates(
        ["customer_id", "first_name", "last_name", "email", "phone", "birth_text", "postcode"]
        + ["country", "signup_text", "_raw_record"]
    )
    df = df.withColumns(
        {
            "id": F.col("customer_id").try_cast("bigint"),
            "birth_date": timestamp("birth_text", "yyyy-MM-dd", "MM/dd/yyyy", "dd.MM.yyyy").cast("date"),
            "signup_ts": timestamp("signup_text", "yyyy-MM-dd HH:mm:ss"),
        }
    )
    accepted, rejected, tagged = split(
        df,
        [
            (
                F.col("customer_id").isNotNull() & F.col("id").isNull(),
                "type_coercion",
                "customer_id: not a bigint",
            ),
            (F.col("id").isNull(), "null", "customer_id: null"),
            (F.col("birth_text").isNotNull() & F.col("birth_date").isNull(), "type_coercion", "birth_date"),
            (F.col("birth_date") < F.lit("1900-01-01").cast("date"), "out_of_range", "birth_date: below"),
            (F.col("birth_date") > F.current_date(), "out_of_range", "birth_date: above now"),
            (F.col("signup_text").isNotNull() & F.col("signup_ts").isNull(), "type_coercion", "signup_ts"),
            (F.col("signup_ts") > F.current_timestamp(), "out_of_range", "signup_ts: above now"),
        ],
        "customers",
    )
    inner, outer = hmac_pads(key)
    age = F.floor(F.months_between(F.current_date(), F.col("birth_date")) / 12)
    band = F.when(age < AGE_BANDS[0][0], AGE_BANDS[0][1])
    for upper, label in AGE_BANDS[1:]:
        band = band.when(age < upper, label)
    hidden = F.greatest(F.length("phone") - 4, F.lit(0))
    silver = latest_per_key(
        accepted.withColumn("customer_id", F.col("id")), "customer_id", "signup_ts"
    ).select(
        "customer_id",
        F.sha2(
            F.concat(F.lit(outer), F.unhex(F.sha2(F.concat(F.lit(inner), F.encode("email", "UTF-8")), 256))),
            256,
        ).alias("email_hmac"),
        F.when(
            F.col("phone").isNotNull(), F.concat(F.repeat(F.lit("*"), hidden), F.substring("phone", -4, 4))
        ).alias("phone_masked"),
        F.when(F.col("birth_date").isNotNull(), band.otherwise("65+")).alias("age_band"),
        F.substring("postcode", 1, 2).alias("postcode_prefix"),
        F.coalesce("country", F.lit("??")).alias("country"),
        "signup_ts",
    )
    return silver, rejected, tagged


def clean_orders(bronze: DataFrame, customers: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame]:
    df = bronze.select(
        *[F.trim(c).alias(c) for c in ["order_id", "customer_id", "order_ts", "amount"]],
        "items",
        F.lower(F.trim("channel")).alias("channel"),
        "_raw_record",
        "_row_hash",
    ).dropDuplicates(["order_id", "customer_id", "order_ts", "items", "amount", "channel", "_raw_record"])
    typed = df.select(
        F.col("order_id").try_cast("bigint").alias("id"),
        F.col("customer_id").try_cast("bigint").alias("customer"),
        timestamp("order_ts", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd HH:mm:ss").alias("ts"),
        F.col("amount").try_cast("double").alias("value"),
        *df.columns,
    )
    typed = with_known_customer(typed, customers)
    accepted, rejected, tagged = split(
        typed,
        [
            (F.col("order_id").isNotNull() & F.col("id").isNull(), "type_coercion", "order_id: not a bigint"),
            (F.col("id").isNull(), "null", "order_id: null"),
            (F.col("customer_id").isNotNull() & F.col("customer").isNull(), "type_coercion", "customer_id"),
            (F.col("customer").isNull(), "null", "customer_id: null"),
            (F.col("order_ts").isNotNull() & F.col("ts").isNull(), "type_coercion", "order_ts"),
            (F.col("ts") > F.current_timestamp(), "out_of_range", "order_ts: above now"),
            (F.col("ts").isNull(), "null", "order_ts: null"),
            (F.col("amount").isNotNull() & F.col("value").isNull(), "type_coercion", "amount: not a double"),
            (F.isnan("value") | F.col("value").isin(float("inf"), float("-inf")), "not_finite", "amount"),
            (F.col("value") < 0, "out_of_range", "amount: below 0"),
            (~F.col("channel").isin("web", "app", "store"), "not_allowed", "channel"),
            (F.col("is_known").isNull(), "orphan", "customer_id: not in silver.customers"),
        ],
        "orders",
    )
    q1, q3 = accepted.approxQuantile("value", [0.25, 0.75], 0.001)
    low, high = q1 - 3 * (q3 - q1), q3 + 3 * (q3 - q1)
    capped = accepted.withColumn(
        "value", F.when(F.col("value").isNotNull(), F.least(F.greatest("value", F.lit(low)), F.lit(high)))
    )
    median = capped.approxQuantile("value", [0.5], 0.001)[0]
    top = capped.filter("channel IS NOT NULL").groupBy("channel").count().orderBy(F.desc("count"), "channel")
    mode = top.first()["channel"]
    filled = capped.select(
        F.col("id").alias("order_id"),
        F.col("customer").alias("customer_id"),
        F.col("ts").alias("order_ts"),
        "items",
        F.coalesce("value", F.lit(median)).alias("amount"),
        F.coalesce("channel", F.lit(mode)).alias("channel"),
        "_row_hash",
    )
    return latest_per_key(filled, "order_id", "order_ts").drop("_row_hash"), rejected, tagged


def clean_reviews(bronze: DataFrame, customers: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame]:
    @F.pandas_udf("string")
    def nfc(values):
        import unicodedata

        return values.map(lambda v: unicodedata.normalize("NFC", v) if isinstance(v, str) else v)

    df = bronze.select(
        *[F.trim(c).alias(c) for c in ["review_id", "customer_id", "product", "rating", "posted_at"]],
        nfc(F.regexp_replace(F.trim("text"), r"\s+", " ")).alias("text"),
        "_raw_record",
        "_row_hash",
    ).dropDuplicates(["review_id", "customer_id", "product", "rating", "text", "posted_at", "_raw_record"])
    typed = df.select(
        F.col("review_id").try_cast("bigint").alias("id"),
        F.col("customer_id").try_cast("bigint").alias("customer"),
        F.col("rating").try_cast("int").alias("stars"),
        timestamp("posted_at", "yyyy-MM-dd HH:mm:ss").alias("ts"),
        *df.columns,
    )
    typed = with_known_customer(typed, customers)
    accepted, rejected, tagged = split(
        typed,
        [
            (F.col("review_id").isNotNull() & F.col("id").isNull(), "type_coercion", "review_id"),
            (F.col("id").isNull(), "null", "review_id: null"),
            (F.col("customer_id").isNotNull() & F.col("customer").isNull(), "type_coercion", "customer_id"),
            (F.col("rating").isNotNull() & F.col("stars").isNull(), "type_coercion", "rating: not a int"),
            (F.col("stars") < 1, "out_of_range", "rating: below 1"),
            (F.col("stars") > 5, "out_of_range", "rating: above 5"),
            (F.col("stars").isNull(), "null", "rating: null"),
            (F.col("posted_at").isNotNull() & F.col("ts").isNull(), "type_coercion", "posted_at"),
            (F.col("ts") > F.current_timestamp(), "out_of_range", "posted_at: above now"),
            (F.col("customer").isNotNull() & F.col("is_known").isNull(), "orphan", "customer_id: orphan"),
        ],
        "reviews",
    )
    silver = accepted.select(
        F.col("id").alias("review_id"),
        F.col("customer").alias("customer_id"),
        "product",
        F.col("stars").alias("rating"),
        "text",
        F.col("ts").alias("posted_at"),
        "_row_hash",
    )
    return latest_per_key(silver, "review_id", "posted_at").drop("_row_hash"), rejected, tagged


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    key = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def clean(spark: SparkSession, out: Path, key: bytes) -> None:
    def bronze(name: str) -> DataFrame:
        return spark.read.format("delta").load(str(out / "bronze" / name))

    def save(cleaned: tuple[DataFrame, DataFrame, DataFrame], name: str) -> DataFrame:
        silver, rejected, tagged = cleaned
        silver.write.format("delta").mode("overwrite").save(str(out / "silver" / name))
        rejected.write.format("delta").mode("append").save(str(out / "quarantine"))
        tagged.unpersist()
        return spark.read.format("delta").load(str(out / "silver" / name))

    customers = save(clean_customers(bronze("customers"), key), "customers")
    save(clean_orders(bronze("orders"), customers), "orders")
    save(clean_reviews(bronze("reviews"), customers), "reviews")


# ---------------------------------------------------------------- features

CUSTOMER_ACTIVITY = """
WITH valid AS (SELECT * FROM orders WHERE amount >= 0),
as_of AS (SELECT max(order_ts) AS as_of FROM valid),
per_customer AS (
  SELECT customer_id, max(order_ts) AS last_order_ts, count(1) AS frequency,
         round(sum(amount), 2) AS monetary, round(avg(size(items)), 3) AS avg_basket_size,
         mode(channel) AS favourite_channel
  FROM valid GROUP BY customer_id)
SELECT p.customer_id, c.country, c.age_band, c.signup_ts,
       datediff(a.as_of, p.last_order_ts) AS recency_days,
       CAST(p.frequency AS DOUBLE) AS frequency, p.monetary, p.avg_basket_size,
       p.favourite_channel, greatest(datediff(a.as_of, c.signup_ts), 0) AS tenure_days
FROM per_customer p JOIN customers c ON p.customer_id = c.customer_id CROSS JOIN as_of a
"""


def features(spark: SparkSession, out: Path) -> None:
    for name in ("orders", "customers"):
        spark.read.format("delta").load(str(out / "silver" / name)).createOrReplaceTempView(name)
    spark.sql(CUSTOMER_ACTIVITY).write.format("delta").mode("overwrite").save(str(out / "gold" / "activity"))


def run(spark: SparkSession, landing: Path, out: Path, key: bytes) -> dict[str, float]:
    """Seconds of each stage."""
    stages = {
        "ingest": lambda: ingest(spark, landing, out),
        "clean": lambda: clean(spark, out, key),
        "features": lambda: features(spark, out),
    }
    return {name: round(timed(stage), 2) for name, stage in stages.items()}
