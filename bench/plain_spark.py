"""The job a data engineer would write instead of deepspark: plain PySpark, pyspark.ml and Delta,
no deepspark import, the sample shop's rules written out by hand (conf/base/*.yaml).

Same semantics as deepspark's stages on the shop's landing files: bronze keeps every record (a
malformed one with its raw text); clean trims and lower/upper-cases text, drops exact copies,
types each column, sends each row that breaks a rule to quarantine with the first rule's
reason, quarantines orders of unknown customers, caps amount's outliers (3 IQR), fills nulls
(median amount, most frequent channel, country ``??``), keeps the latest row per key and
protects PII (HMAC-SHA256 e-mail, masked phone, age band, postcode area). ``validate`` checks
validate.yaml's expectations in one aggregation per table; ``features`` fits, saves and
applies the three feature pipelines of features.yaml into gold tables; ``analytics`` runs
analytics.yaml's k-means, FP-growth (rules of any size) and tuned trees with MLlib, saving the
models and writing the segments, itemsets and rules.

``anchors.py`` runs it and checks its outputs against deepspark's.
"""

from __future__ import annotations

import hashlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from pyspark.ml import Pipeline
from pyspark.ml.classification import DecisionTreeClassifier
from pyspark.ml.clustering import KMeans
from pyspark.ml.evaluation import ClusteringEvaluator, MulticlassClassificationEvaluator, RegressionEvaluator
from pyspark.ml.feature import (
    IDF,
    Bucketizer,
    CountVectorizer,
    Imputer,
    OneHotEncoder,
    RegexTokenizer,
    SQLTransformer,
    StandardScaler,
    StopWordsRemover,
    StringIndexer,
    VectorAssembler,
)
from pyspark.ml.fpm import FPGrowth
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.regression import DecisionTreeRegressor
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder, TrainValidationSplit
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


def clean_customers(bronze: DataFrame, key: bytes, now: datetime) -> tuple[DataFrame, DataFrame, DataFrame]:
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
            (F.col("birth_date") > F.lit(now).cast("date"), "out_of_range", "birth_date: above now"),
            (F.col("signup_text").isNotNull() & F.col("signup_ts").isNull(), "type_coercion", "signup_ts"),
            (F.col("signup_ts") > F.lit(now), "out_of_range", "signup_ts: above now"),
        ],
        "customers",
    )
    inner, outer = hmac_pads(key)
    age = F.floor(F.months_between(F.lit(now).cast("date"), F.col("birth_date")) / 12)
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


def clean_orders(
    bronze: DataFrame, customers: DataFrame, now: datetime
) -> tuple[DataFrame, DataFrame, DataFrame]:
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
            (F.col("ts") > F.lit(now), "out_of_range", "order_ts: above now"),
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


def clean_reviews(
    bronze: DataFrame, customers: DataFrame, now: datetime
) -> tuple[DataFrame, DataFrame, DataFrame]:
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
            (F.col("ts") > F.lit(now), "out_of_range", "posted_at: above now"),
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


def clean(spark: SparkSession, out: Path, key: bytes, now: datetime | None = None) -> None:
    """``now``: what 'now' means to the rules and age bands (default: when the job starts)."""
    now = now or datetime.now(UTC)

    def bronze(name: str) -> DataFrame:
        return spark.read.format("delta").load(str(out / "bronze" / name))

    def save(cleaned: tuple[DataFrame, DataFrame, DataFrame], name: str) -> DataFrame:
        silver, rejected, tagged = cleaned
        silver.write.format("delta").mode("overwrite").save(str(out / "silver" / name))
        rejected.write.format("delta").mode("append").save(str(out / "quarantine"))
        tagged.unpersist()
        return spark.read.format("delta").load(str(out / "silver" / name))

    customers = save(clean_customers(bronze("customers"), key, now), "customers")
    save(clean_orders(bronze("orders"), customers, now), "orders")
    save(clean_reviews(bronze("reviews"), customers, now), "reviews")


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
    """The three feature sets of conf/base/features.yaml: a pyspark.ml Pipeline each, fitted,
    saved, and its output written as a gold Delta table."""
    for name in ("orders", "customers", "reviews"):
        spark.read.format("delta").load(str(out / "silver" / name)).createOrReplaceTempView(name)
    activity = spark.sql(CUSTOMER_ACTIVITY).cache()
    reviews = spark.table("reviews")

    def imputed(columns: list[str]) -> list[str]:
        return [f"{c}_imputed" for c in columns]

    def numeric(columns: list[str]) -> list:
        return [Imputer(inputCols=columns, outputCols=imputed(columns), strategy="median")]

    rfm = ["recency_days", "frequency", "monetary", "avg_basket_size"]
    value = [
        "recency_days",
        "frequency",
        "avg_basket_size",
        "tenure_days",
        "signup_ts_year",
        "signup_ts_month",
    ]
    categorical = ["country", "age_band", "favourite_channel"]
    posted = ["posted_at_dayofweek", "posted_at_hour"]
    one_hot = ["recency_bucket", *[f"{c}_idx" for c in categorical]]
    sets = {
        "customer_rfm": (
            activity,
            "customer_id",
            numeric(rfm)
            + [
                VectorAssembler(inputCols=imputed(rfm), outputCol="assembled"),
                StandardScaler(inputCol="assembled", outputCol="scaled", withMean=True),
            ],
            rfm,
        ),
        "customer_value": (
            activity,
            "customer_id",
            [
                SQLTransformer(
                    statement="SELECT *, year(signup_ts) AS signup_ts_year, "
                    "month(signup_ts) AS signup_ts_month FROM __THIS__"
                ),
                *numeric(value),
                Bucketizer(
                    splitsArray=[[-float("inf"), 30, 90, 180, 365, float("inf")]],
                    inputCols=imputed(["recency_days"]),
                    outputCols=["recency_bucket"],
                ),
                StringIndexer(
                    inputCols=categorical, outputCols=[f"{c}_idx" for c in categorical], handleInvalid="keep"
                ),
                OneHotEncoder(
                    inputCols=one_hot, outputCols=[f"{c}_ohe" for c in one_hot], handleInvalid="keep"
                ),
                VectorAssembler(
                    inputCols=imputed(value) + [f"{c}_ohe" for c in one_hot],
                    outputCol="assembled",
                ),
                StandardScaler(inputCol="assembled", outputCol="scaled", withMean=True),
            ],
            ["monetary", "recency_days", "frequency", "avg_basket_size", "tenure_days", *categorical],
        ),
        "reviews": (
            reviews,
            "review_id",
            [
                SQLTransformer(
                    statement="SELECT *, CASE WHEN rating >= 4 THEN 'positive' ELSE 'not positive' END AS "
                    "sentiment, dayofweek(posted_at) AS posted_at_dayofweek, "
                    "hour(posted_at) AS posted_at_hour, coalesce(text, '') AS text_or_empty FROM __THIS__"
                ),
                *numeric(posted),
                StringIndexer(inputCols=["product"], outputCols=["product_idx"], handleInvalid="keep"),
                OneHotEncoder(inputCols=["product_idx"], outputCols=["product_ohe"], handleInvalid="keep"),
                RegexTokenizer(inputCol="text_or_empty", outputCol="tokens", pattern=r"[^\p{L}\p{N}]+"),
                StopWordsRemover(inputCol="tokens", outputCol="words"),
                CountVectorizer(inputCol="words", outputCol="tf", vocabSize=200, minDF=2.0),
                IDF(inputCol="tf", outputCol="tfidf"),
                VectorAssembler(
                    inputCols=imputed(posted) + ["product_ohe", "tfidf"],
                    outputCol="assembled",
                ),
            ],
            ["sentiment", "product"],
        ),
    }
    for name, (source, key, stages, kept) in sets.items():
        model = Pipeline(stages=stages).fit(source)
        model.write().overwrite().save(str(out / "models" / name))
        scored = model.transform(source)
        vectors = [vector_to_array("assembled").alias("features")]
        if "scaled" in scored.columns:
            vectors.append(vector_to_array("scaled").alias("features_scaled"))
        gold = scored.select(key, *kept, *vectors)
        gold.write.format("delta").mode("overwrite").save(str(out / "gold" / name))
    activity.unpersist()


# ---------------------------------------------------------------- validate


def validate(spark: SparkSession, out: Path) -> dict[str, list[list]]:
    """conf/base/validate.yaml's expectations as one aggregation per silver table (a column's
    checks skip its nulls, as Great Expectations' do). Per table, per expectation: its name and
    column, whether it passed, and what it measured (the row count or the mean; else how many
    values broke it, except for uniqueness, which counts differently from GX)."""

    def none(measure: float) -> bool:
        return measure == 0

    def rows_at_least(minimum: int):
        return "expect_table_row_count_to_be_between", None, F.count(F.lit(1)), lambda n: n >= minimum

    def not_null(column: str):
        return "expect_column_values_to_not_be_null", column, F.count_if(F.col(column).isNull()), none

    def unique(column: str):
        return "expect_column_values_to_be_unique", column, F.count(column) - F.count_distinct(column), none

    def never(expectation: str, column: str, broken: Column):
        return expectation, column, F.count_if(F.col(column).isNotNull() & broken), none

    suites = {
        "customers": [
            rows_at_least(10),
            not_null("customer_id"),
            unique("customer_id"),
            never(
                "expect_column_values_to_match_regex",
                "email_hmac",
                ~F.col("email_hmac").rlike("^[0-9a-f]{64}$"),
            ),
            never(
                "expect_column_values_to_be_in_set",
                "age_band",
                ~F.col("age_band").isin(*[b for _, b in AGE_BANDS], "65+"),
            ),
            never("expect_column_values_to_match_regex", "country", ~F.col("country").rlike("^[A-Z?]{2}$")),
        ],
        "orders": [
            rows_at_least(10),
            unique("order_id"),
            not_null("customer_id"),
            never("expect_column_values_to_be_between", "amount", F.col("amount") < 0),
            never(
                "expect_column_values_to_be_in_set", "channel", ~F.col("channel").isin("web", "app", "store")
            ),
            ("expect_column_mean_to_be_between", "amount", F.avg("amount"), lambda mean: 5 <= mean <= 500),
        ],
        "reviews": [
            rows_at_least(10),
            unique("review_id"),
            never("expect_column_values_to_be_between", "rating", ~F.col("rating").between(1, 5)),
            never("expect_column_value_lengths_to_be_between", "text", F.length("text") < 1),
        ],
    }
    found = {}
    for table, checks in suites.items():
        silver = spark.read.format("delta").load(str(out / "silver" / table))
        measured = silver.agg(
            *[measure.alias(f"m{i}") for i, (_, _, measure, _) in enumerate(checks)]
        ).first()
        found[table] = [
            [f"{expectation}:{column}", passed(measured[i]), verdict_measure(expectation, measured[i])]
            for i, (expectation, column, _, passed) in enumerate(checks)
        ]
    return found


def verdict_measure(expectation: str, value: float) -> float | None:
    """What a verdict is compared on: GX's observed row count or mean (6 decimals), the count of
    values that broke the rule, or nothing for uniqueness."""
    if expectation == "expect_column_values_to_be_unique":
        return None
    return round(float(value), 6) if expectation == "expect_column_mean_to_be_between" else int(value)


# ---------------------------------------------------------------- analytics


def analytics(spark: SparkSession, out: Path, seed: int = 42) -> dict:
    """conf/base/analytics.yaml with MLlib: k-means over k 2..6 (3 seeds each, the least cost
    kept, the best silhouette wins), FP-growth with rules of any size, two tuned trees."""
    gold = {name: spark.read.format("delta").load(str(out / "gold" / name)) for name in GOLD_SETS}
    found = {"kmeans": segments(gold["customer_rfm"], out, seed)}
    found["rules"] = association_rules(spark.read.format("delta").load(str(out / "silver" / "orders")), out)
    found["trees"] = {
        "review_sentiment": tree(gold["reviews"], "sentiment", "classifier", [4, 6], [1, 10], out, seed),
        "customer_value": tree(gold["customer_value"], "monetary", "regressor", [3, 5], [1, 20], out, seed),
    }
    return found


GOLD_SETS = ("customer_rfm", "customer_value", "reviews")


def segments(features: DataFrame, out: Path, seed: int) -> dict:
    points = features.select("customer_id", array_to_vector("features_scaled").alias("v")).cache()
    evaluator = ClusteringEvaluator(featuresCol="v", predictionCol="segment")
    best = None
    for k in range(2, 7):
        fits = [
            KMeans(k=k, seed=seed + i, maxIter=50, initSteps=5, featuresCol="v", predictionCol="segment").fit(
                points.select("v")
            )
            for i in range(3)
        ]
        model = min(fits, key=lambda m: m.summary.trainingCost)
        score = evaluator.evaluate(model.transform(points))
        if best is None or score > best[0]:
            best = (score, model)
    model = best[1]
    model.write().overwrite().save(str(out / "models" / "kmeans"))
    scored = model.transform(points)
    scored.select("customer_id", "segment").write.format("delta").mode("overwrite").save(
        str(out / "gold" / "segments")
    )
    points.unpersist()
    return {"k": model.getK(), "inertia": round(model.summary.trainingCost, 4)}


def association_rules(orders: DataFrame, out: Path) -> dict:
    baskets = (
        orders.filter(F.col("items").isNotNull())
        .select(F.array_distinct(F.filter("items", lambda item: item.isNotNull())).alias("items"))
        .cache()
    )
    n = baskets.count()
    model = FPGrowth(itemsCol="items", minSupport=0.01, minConfidence=0.2).fit(baskets)
    itemsets = model.freqItemsets.select(
        F.array_sort("items").alias("items"),
        F.size("items").alias("size"),
        "freq",
        (F.col("freq") / n).alias("support"),
    ).cache()
    itemsets.write.format("delta").mode("overwrite").save(str(out / "gold" / "itemsets"))
    # Every split of an itemset into two non-empty parts (a bit mask each), as mlxtend's rules.
    masks = F.sequence(F.lit(1), (F.pow(F.lit(2), F.col("size")) - 2).cast("int"))
    splits = itemsets.filter("size >= 2").select("items", "support", F.explode(masks).alias("mask"))

    def part(inside: bool) -> Column:
        return F.filter(
            "items", lambda _, i: (F.col("mask").bitwiseAND(F.pow(F.lit(2), i).cast("int")) != 0) == inside
        )

    supports = itemsets.select("items", "support")
    rules = (
        splits.select(part(True).alias("antecedent"), part(False).alias("consequent"), "support")
        .join(supports.toDF("antecedent", "antecedent_support"), "antecedent")
        .join(supports.toDF("consequent", "consequent_support"), "consequent")
        .withColumn("confidence", F.col("support") / F.col("antecedent_support"))
        .filter("confidence >= 0.2")
        .withColumn("lift", F.col("confidence") / F.col("consequent_support"))
    )
    rules.write.format("delta").mode("overwrite").save(str(out / "gold" / "rules"))
    model.write().overwrite().save(str(out / "models" / "fpgrowth"))
    found = {
        "itemsets": itemsets.count(),
        "rules": orders.sparkSession.read.format("delta").load(str(out / "gold" / "rules")).count(),
    }
    itemsets.unpersist()
    baskets.unpersist()
    return found


def tree(
    features: DataFrame, label: str, kind: str, depths: list[int], sizes: list[int], out: Path, seed: int
) -> dict:
    target = F.col(label).cast("string" if kind == "classifier" else "double")
    data = (
        features.filter(target.isNotNull())
        .select(array_to_vector("features").alias("v"), target.alias("y"))
        .cache()
    )
    train, test = data.randomSplit([0.8, 0.2], seed=seed)
    if kind == "classifier":
        model = DecisionTreeClassifier(featuresCol="v", labelCol="y_index", impurity="entropy", seed=seed)
        stages = [StringIndexer(inputCol="y", outputCol="y_index", stringOrderType="alphabetAsc"), model]
        evaluator = MulticlassClassificationEvaluator(labelCol="y_index", metricName="f1")
    else:
        model = DecisionTreeRegressor(featuresCol="v", labelCol="y", impurity="variance", seed=seed)
        stages = [model]
        evaluator = RegressionEvaluator(labelCol="y", metricName="rmse")
    grid = (
        ParamGridBuilder().addGrid(model.maxDepth, depths).addGrid(model.minInstancesPerNode, sizes).build()
    )
    tuning = {
        "estimator": Pipeline(stages=stages),
        "estimatorParamMaps": grid,
        "evaluator": evaluator,
        "seed": seed,
    }
    tuner = (
        TrainValidationSplit(trainRatio=0.75, parallelism=2, **tuning)
        if kind == "classifier"
        else CrossValidator(numFolds=3, parallelism=2, **tuning)
    )
    best = tuner.fit(train).bestModel
    best.write().overwrite().save(str(out / "models" / f"tree_{label}"))
    (out / f"tree_{label}.txt").write_text(best.stages[-1].toDebugString)
    chosen = best.stages[-1]
    score = evaluator.evaluate(best.transform(test))
    data.unpersist()
    return {
        "chosen": {
            "max_depth": chosen.getMaxDepth(),
            "min_instances_per_node": chosen.getMinInstancesPerNode(),
        },
        evaluator.getMetricName(): round(score, 4),
    }


def run(spark: SparkSession, landing: Path, out: Path, key: bytes) -> tuple[dict[str, float], dict]:
    """Seconds of each stage, and what validate and analytics found."""
    found: dict = {}
    stages = {
        "ingest": lambda: ingest(spark, landing, out),
        "clean": lambda: clean(spark, out, key),
        "validate": lambda: found.update(validate=validate(spark, out)),
        "features": lambda: features(spark, out),
        "analytics": lambda: found.update(analytics=analytics(spark, out)),
    }
    return {name: round(timed(stage), 2) for name, stage in stages.items()}, found
