"""The clean stage's transforms on tiny frames, and its incremental MERGE into silver."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from deepspark.config import CleanConfig, ColumnRule, ConfigError, DatasetCleaning, IngestConfig, SourceConfig
from deepspark.pipeline import run_pipeline
from deepspark.run import Run, run_as_of
from deepspark.stages.clean.privacy import MissingKeyError, age_band, hmac_pads, mask, protect
from deepspark.stages.clean.stage import (
    TYPED,
    balanced,
    cap_outliers,
    check_rules,
    clean_dataset,
    expand_globs,
    fill_nulls,
    mark_duplicates,
    no_rows,
    normalize_text,
    outlier_bounds,
    quarantine_warning,
    rules_digest,
    tag_orphans,
    tag_row_rules,
)
from pyspark.sql import functions as F

AS_OF = datetime(2026, 6, 1, 12, tzinfo=UTC)  # a run's moment: what 'now' means to clean


def rules(**columns) -> dict[str, ColumnRule]:
    return {name: ColumnRule.model_validate(rule) for name, rule in columns.items()}


def hmac_of(df, key: bytes) -> list:
    protected = protect(df, rules(email={"privacy": "hmac"}), key, AS_OF)
    return [r.email_hmac for r in protected.orderBy(F.col("email_hmac").asc_nulls_last()).collect()]


def test_hmac_matches_pythons_hmac_and_differs_by_key(spark):
    df = spark.createDataFrame([("anna@example.com",), ("é@x.fr",), (None,)], "email string")
    long_key = b"k" * 100  # longer than a block: hashed first, as RFC 2104 says
    for key in (b"secret", long_key):
        want = [hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in ("anna@example.com", "é@x.fr")]
        assert hmac_of(df, key) == [*sorted(want), None]
    assert hmac_of(df, b"a") != hmac_of(df, b"b")


def test_the_hmac_key_never_appears_in_a_query_plan(spark):
    key = b"plan-sentinel-key"
    df = spark.createDataFrame([("anna@example.com",)], "email string")
    protected = protect(df, rules(email={"privacy": "hmac"}), key, AS_OF)
    execution = protected._jdf.queryExecution()
    plans = execution.toString() + execution.executedPlan().toString()
    assert protected.columns == ["email_hmac"]
    for form in (key, *hmac_pads(key)):  # the key, and the pads (the key XOR a constant)
        for text in (form.hex(), form.hex().upper(), form.decode("latin-1")):
            assert text not in plans
    assert "email_hmac" in plans  # the plan is there to be read, only without the key


def test_mask_age_band_and_prefix_hide_what_they_should(spark):
    df = spark.createDataFrame(
        [("+33 6 12345678", date(1990, 6, 1), "75011"), ("12", None, None)],
        "phone string, born date, zip string",
    )
    columns = rules(
        phone={"privacy": {"method": "mask", "keep": 4}},
        born={"privacy": "age_band"},
        zip={"privacy": {"method": "prefix", "length": 2}},
    )
    out = protect(df, columns, key=None, as_of=AS_OF)
    assert out.columns == ["phone_masked", "age_band", "zip_prefix"]
    first, second = out.collect()
    assert first.phone_masked == "**********5678" and first.zip_prefix == "75"
    assert first.age_band == "35-44"  # 36 on the run's day
    assert (second.phone_masked, second.age_band, second.zip_prefix) == ("12", None, None)
    assert df.select(mask(F.col("phone"), 0)).first()[0] == "*" * 14


def test_an_age_band_is_the_age_on_the_runs_day_not_the_day_it_is_computed(spark):
    born = F.lit(date(1991, 6, 2))  # 35 on 2026-06-02
    bands = [age_band(born, AS_OF + timedelta(days=d)).alias(str(d)) for d in (0, 1)]
    assert tuple(spark.range(1).select(*bands).first()) == ("25-34", "35-44")
    assert spark.range(1).select(age_band(F.lit(AS_OF.date()), AS_OF)).first()[0] == "<18"


def test_a_runs_moment_is_kept_for_its_later_stages_and_reruns(tmp_path):
    first = run_as_of(tmp_path / "run-1")
    assert first.tzinfo is not None and first.microsecond == 0
    assert (tmp_path / "run-1" / "as_of.json").exists()
    assert run_as_of(tmp_path / "run-1") == first  # a later stage, or a rerun of the run id
    assert [p.name for p in (tmp_path / "run-1").iterdir()] == ["as_of.json"]  # no temporary left


def test_an_hmac_rule_without_a_key_is_a_clear_error(spark):
    df = spark.createDataFrame([("a@b.c",)], "email string")
    with pytest.raises(MissingKeyError, match="DEEPSPARK_SECRET_PII_HMAC_KEY"):
        protect(df, rules(email={"privacy": "hmac"}), key=None, as_of=AS_OF)


def test_normalize_trims_cases_collapses_and_composes_unicode(spark):
    decomposed = "Rene\u0301e"  # e + combining acute accent
    df = spark.createDataFrame(
        [("  Ab  ", f"  {decomposed}   x  ", " keep ")], "a string, b string, c string"
    )
    out = normalize_text(
        df, rules(a={"normalize": ["trim", "upper"]}, b={"normalize": ["trim", "collapse_spaces", "nfc"]})
    )
    assert out.first().asDict() == {"a": "AB", "b": "Ren\u00e9e x", "c": "keep"}


def test_row_rules_name_the_first_rule_each_row_breaks(spark):
    df = spark.createDataFrame(
        [("1", "5", "web"), ("x", "5", "web"), ("2", "-1", "web"), ("3", "5", "fax"), (None, "5", "app")],
        "id string, qty string, channel string",
    )
    columns = rules(
        id={"type": "bigint", "nulls": "drop"},
        qty={"type": "int", "range": {"min": 0}},
        channel={"allowed": ["web", "app"]},
    )
    tagged = tag_row_rules(df, columns, AS_OF).select("_reason", "_rule").collect()
    assert [(r._reason, r._rule) for r in tagged] == [
        (None, None),
        ("type_coercion", "id: not a bigint"),
        ("out_of_range", "qty: below 0"),
        ("not_allowed", "channel: not one of ['web', 'app']"),
        ("null", "id: null"),
    ]


def test_a_now_bound_is_the_runs_moment(spark):  # the session's time zone is UTC
    second, day = timedelta(seconds=1), AS_OF.strftime("%Y-%m-%d")
    seen = [(AS_OF - second, day), (AS_OF, None), (AS_OF + second, None), (None, "2026-06-02")]
    df = spark.createDataFrame(
        [(t and t.strftime("%Y-%m-%d %H:%M:%S"), d) for t, d in seen], "ts string, day string"
    )
    columns = rules(
        ts={"type": "timestamp", "formats": ["yyyy-MM-dd HH:mm:ss"], "range": {"max": "now"}},
        day={"type": "date", "range": {"max": "now"}},
    )
    tagged = [r._rule for r in tag_row_rules(df, columns, AS_OF).collect()]
    assert tagged == [None, None, "ts: above now", "day: above now"]


def test_a_decimal_comma_reads_grouped_thousands_and_quarantines_a_decimal_point(spark):
    values = ["3,5", "1.234,5", " -1.234.567,89 ", "517", "1.5", "1,2,3", None]
    df = spark.createDataFrame([(v, v) for v in values], "price string, qty string")
    columns = rules(price={"type": "double", "decimal": ","}, qty={"type": "int", "decimal": ","})
    tagged = tag_row_rules(df, columns, AS_OF).select(f"{TYPED}price", f"{TYPED}qty", "_rule").collect()
    assert [tuple(r) for r in tagged] == [
        (3.5, None, "qty: not a int with decimal ','"),
        (1234.5, None, "qty: not a int with decimal ','"),
        (-1234567.89, None, "qty: not a int with decimal ','"),
        (517.0, 517, None),
        (None, None, "price: not a double with decimal ','"),  # 1.5 is not read as 15 or 1.5
        (None, None, "price: not a double with decimal ','"),
        (None, None, None),
    ]
    whole = spark.createDataFrame([("1.234",), ("517,0",)], "qty string")
    typed = tag_row_rules(whole, rules(qty={"type": "bigint", "decimal": ","}), AS_OF).select(f"{TYPED}qty")
    assert [r[0] for r in typed.collect()] == [1234, 517]


def test_a_configured_column_missing_from_the_data_fails_naming_its_key(spark):
    df = spark.createDataFrame([("1",)], "id string")
    dataset = DatasetCleaning.model_validate({"keys": ["id"], "columns": {"qty": {"type": "int"}}})
    with pytest.raises(
        ConfigError, match=r"^columns.qty: names column 'qty', which is not in the data; .*: id$"
    ):
        check_rules(df, dataset, lambda key, problem: ConfigError(f"{key}: {problem}"))


@pytest.mark.parametrize(
    "written,hint",
    [("float64", "did you mean 'double'? "), ("int64", "did you mean 'bigint'? "), ("doubel", "")],
)
def test_a_type_spark_does_not_know_names_its_key_and_the_spark_name(spark, written, hint):
    df = spark.createDataFrame([("1", "2.5")], "id string, qty string")
    dataset = DatasetCleaning.model_validate({"keys": ["id"], "columns": {"qty": {"type": written}}})
    with pytest.raises(ConfigError) as error:
        check_rules(df, dataset, lambda key, problem: ConfigError(f"{key}: {problem}"))
    assert str(error.value) == (
        f"columns.qty.type: = '{written}': not a Spark SQL type; {hint}expected one such as "
        "int, bigint, double, decimal(12,2), boolean, string, date, timestamp"
    )


def test_a_glob_gives_its_rule_to_every_column_it_matches_that_is_not_named_outright():
    dataset = DatasetCleaning.model_validate(
        {
            "keys": ["id"],
            "derive": {"ratio_mean": "area_mean / radius_mean"},
            "columns": {
                "radius_mean": {"type": "int"},
                "*_mean": {"type": "double"},
                "r*": {"type": "string"},
            },
        }
    )
    bronze = ["id", "radius_mean", "area_mean", "radius_se", "_batch_id", "_ingest_issue"]
    expanded = expand_globs(dataset, bronze, lambda key, problem: ConfigError(f"{key}: {problem}"))
    assert {name: rule.type for name, rule in expanded.columns.items()} == {
        "radius_mean": "int",  # named outright
        "area_mean": "double",
        "ratio_mean": "double",  # derived columns match too; "r*" came second
        "radius_se": "string",
    }
    unmatched = dataset.model_copy(update={"columns": {"*_worst": ColumnRule(type="double")}})
    with pytest.raises(ConfigError) as error:
        expand_globs(unmatched, bronze, lambda key, problem: ConfigError(f"{key}: {problem}"))
    assert str(error.value) == (
        "columns.*_worst: matches no column; "
        "expected a glob over: id, radius_mean, area_mean, radius_se, ratio_mean"
    )


def test_orphans_are_tagged_against_the_referenced_table(spark):
    orders = tag_row_rules(
        spark.createDataFrame([("1", "10"), ("2", "99"), ("3", None)], "id string, cust string"),
        rules(cust={"type": "bigint", "references": "silver.customers.customer_id"}),
        AS_OF,
    )
    customers = spark.createDataFrame([(10,), (10,), (11,)], "customer_id long")
    tagged = tag_orphans(
        orders,
        rules(cust={"type": "bigint", "references": "silver.customers.customer_id"}),
        {"silver.customers.customer_id": customers},
    )
    got = sorted((r.id, r._reason) for r in tagged.collect())
    assert got == [("1", None), ("2", "orphan"), ("3", None)]  # one row each: no join fan-out


def test_iqr_caps_outliers_but_leaves_nulls_for_the_imputer(spark):
    values = [("a", str(v)) for v in [10, 11, 12, 13, 14, 15, 1000]] + [("b", None)]
    columns = rules(amount={"type": "double", "outliers": {"method": "iqr", "k": 1.5}, "nulls": "median"})
    tagged = tag_row_rules(spark.createDataFrame(values, "k string, amount string"), columns, AS_OF)
    low, high = outlier_bounds(tagged, columns)["amount"]
    assert 4 < low < 10 and 15 < high < 25
    typed = tagged.select(F.col(f"{TYPED}amount").alias("amount"))
    capped = cap_outliers(typed, columns, {"amount": (low, high)})
    assert sorted(r.amount for r in capped.collect() if r.amount is not None)[-1] == pytest.approx(high)
    assert capped.filter("amount is null").count() == 1
    filled = fill_nulls(capped, columns)
    assert filled.filter("amount is null").count() == 0
    assert filled.agg(F.max("amount")).first()[0] == pytest.approx(high)


def test_a_numeric_column_with_no_value_keeps_its_nulls(spark):
    # Every row of a batch rejected, or every value missing: nothing to take a median of.
    df = spark.createDataFrame([(None, 1.0), (None, None)], "amount double, n double")
    filled = fill_nulls(df, rules(amount={"nulls": "median"}, n={"nulls": "median"}))
    assert [(r.amount, r.n) for r in filled.collect()] == [(None, 1.0), (None, 1.0)]
    empty = fill_nulls(df.limit(0), rules(amount={"nulls": "mean"}))
    assert empty.columns == ["amount", "n"] and empty.count() == 0


def test_mode_of_text_and_constants_fill_nulls(spark):
    df = spark.createDataFrame([("web", None), ("web", 1), ("app", None), (None, 2)], "channel string, n int")
    filled = fill_nulls(df, rules(channel={"nulls": "mode"}, n={"nulls": "constant", "fill": 0}))
    assert [(r.channel, r.n) for r in filled.collect()] == [("web", 0), ("web", 1), ("app", 0), ("web", 2)]


def test_latest_row_per_key_wins_within_a_batch_and_against_silver(spark):
    batch = spark.createDataFrame(
        [(1, 5, "h1"), (1, 7, "h2"), (2, 1, "h3"), (3, 9, "h4")], "id int, ts int, _row_hash string"
    )
    silver = spark.createDataFrame([(2, 4), (3, 2)], "id int, ts int")
    fates = {(r.id, r.ts): r._fate for r in mark_duplicates(batch, ["id"], "ts", silver).collect()}
    assert fates == {(1, 7): "silver", (1, 5): "duplicate_key", (2, 1): "superseded", (3, 9): "silver"}


def test_balanced_only_when_every_row_is_counted_once():
    # 10 in: 1 exact duplicate, 1 key duplicate; 6 to silver, 2 to quarantine.
    counts = no_rows() | {
        "rows_in": 10,
        "rows_out": 6,
        "rows_quarantined": 2,
        "rows_deduplicated": 2,
        "exact_duplicates": 1,
    }
    assert balanced(counts)
    assert not balanced(counts | {"rows_out": 5})  # a row lost on the way to silver
    assert not balanced(counts | {"rows_quarantined": 3})  # a row in the quarantine twice
    # More unique rows than rows in (a join that repeated rows), hidden in the sum:
    assert not balanced(counts | {"exact_duplicates": -1, "rows_deduplicated": 2, "rows_out": 6})


def test_a_mostly_quarantined_batch_warns_pointing_at_the_conf_its_top_reason_comes_from():
    counts = no_rows() | {"rows_in": 10, "rows_quarantined": 4, "rows_out": 6}
    assert quarantine_warning("orders", counts | {"top_rules": [("qty: not a int", 4)]}) is None  # under half
    typed = counts | {
        "rows_quarantined": 8,
        "quarantine_reasons": {"type_coercion": 6, "malformed": 2},
        "top_rules": [("qty: not a int", 6), ("csv: wrong number of fields or broken quoting", 2)],
    }
    assert quarantine_warning("orders", typed) == (
        "clean orders: 8 of 10 rows quarantined, 6 for 'qty: not a int'; "
        "check clean.datasets.orders (types, formats, decimal, null_values of the source) "
        "against quarantine.rows"
    )
    drift = "csv header ['id;qty'] is not the declared ['id', 'qty']: missing ['id', 'qty'], extra ['id;qty']"
    drifted = typed | {
        "quarantine_reasons": {"schema_drift": 7, "type_coercion": 1},
        "top_rules": [(drift, 7)],
    }
    assert quarantine_warning("orders", drifted).endswith(
        "check ingest.sources.orders (columns or ddl, options such as sep) against quarantine.rows"
    )


def test_clean_dataset_accounts_for_every_row(spark):
    bronze = spark.createDataFrame(
        [
            ("1", "a@x.io", "b1", "h1"),
            ("1", "a@x.io", "b1", "h1"),
            ("2", "bad", "b1", "h2"),
            ("x", "c@x.io", "b1", "h3"),
        ],
        "id string, email string, _batch_id string, _row_hash string",
    ).withColumns({"_source_file": F.lit("f"), "_ingested_at": F.current_timestamp()})
    dataset = DatasetCleaning.model_validate(
        {"keys": ["id"], "columns": {"id": {"type": "bigint"}, "email": {"privacy": "hmac"}}}
    )
    cleaned = clean_dataset(bronze, dataset, b"key", AS_OF)
    try:
        assert cleaned.silver.columns == ["id", "email_hmac", "_batch_id", "_row_hash"]
        assert cleaned.silver.count() == 2 and cleaned.rejected.count() == 1 and cleaned.tagged.count() == 3
        assert "a@x.io" not in str(cleaned.silver.collect())
    finally:
        cleaned.release()


def test_incremental_runs_merge_into_silver_latest_wins(spark, config, engine_tables):
    tables = engine_tables
    landing = config.landing_root / "shop"
    landing.mkdir(parents=True)
    source = SourceConfig(format="csv", path="shop", columns=["id", "price", "updated"])
    dataset = DatasetCleaning.model_validate(
        {
            "keys": ["id"],
            "order_by": "updated",
            "columns": {
                "id": {"type": "bigint"},
                "price": {"type": "double"},
                "updated": {"type": "timestamp"},
            },
        }
    )
    narrowed = config.model_copy(
        update={
            "ingest": IngestConfig(sources={"shop": source}),
            "clean": CleanConfig(datasets={"shop": dataset}),
        }
    )
    (landing / "day1.csv").write_text("id,price,updated\n1,10,2024-01-01\n2,20,2024-01-01\n")
    run_pipeline(Run(narrowed, spark, tables, "day-1"), ["ingest", "clean"])
    (landing / "day2.csv").write_text(
        "id,price,updated\n1,11,2024-02-01\n2,19,2023-12-01\n3,30,2024-02-01\n3,29,2024-01-15\n"
    )
    second = Run(narrowed, spark, tables, "day-2")
    run_pipeline(second, ["ingest", "clean"])

    counts = second.results["clean"].metrics["shop"]
    assert (counts["rows_in"], counts["rows_out"]) == (4, 2)
    assert (counts["superseded"], counts["key_duplicates"], counts["balanced"]) == (1, 1, True)
    prices = {r.id: r.price for r in tables.read("silver.shop").collect()}
    assert prices == {1: 11.0, 2: 20.0, 3: 30.0}
    assert tables.version("silver.shop") == 1  # day 1 wrote version 0, day 2 merged once

    third = Run(narrowed, spark, tables, "day-3")
    run_pipeline(third, ["ingest", "clean"])
    assert third.results["clean"].metrics["shop"]["rows_in"] == 0  # nothing new: nothing cleaned twice


def test_the_rules_digest_follows_the_rules_the_null_tokens_and_a_hashing_columns_key():
    plain = DatasetCleaning.model_validate({"keys": ["id"], "columns": {"id": {"type": "bigint"}}})
    hashed = DatasetCleaning.model_validate({"keys": ["id"], "columns": {"email": {"privacy": "hmac"}}})
    assert rules_digest(plain, []) == rules_digest(plain, [], b"key-1") == rules_digest(plain, [], b"key-2")
    assert rules_digest(plain, ["NA"]) != rules_digest(plain, [])
    assert rules_digest(hashed, [], b"key-1") != rules_digest(hashed, [], b"key-2")


def test_changed_rules_clean_every_batch_again_into_a_new_silver_and_quarantine(spark, config, engine_tables):
    tables = engine_tables  # delta-spark too: each rewrite reads the table it overwrites
    sources = {
        "shop": SourceConfig(format="csv", path="shop", columns=["id", "price"], options={"sep": ";"}),
        "other": SourceConfig(format="csv", path="other", columns=["id"]),
    }
    other = DatasetCleaning.model_validate({"keys": ["id"], "columns": {"id": {"type": "bigint"}}})

    def run(run_id: str, price: dict) -> Run:
        shop = DatasetCleaning.model_validate(
            {"keys": ["id"], "columns": {"id": {"type": "bigint"}, "price": price}}
        )
        clean = CleanConfig(datasets={"shop": shop, "other": other})
        done = Run(
            config.model_copy(update={"ingest": IngestConfig(sources=sources), "clean": clean}),
            spark,
            tables,
            run_id,
        )
        run_pipeline(done, ["ingest", "clean"])
        return done

    for folder in ("shop", "other"):
        (config.landing_root / folder).mkdir(parents=True)
    (config.landing_root / "other" / "o.csv").write_text("id\n1\nx\n")  # one row quarantined, kept throughout
    (config.landing_root / "shop" / "day1.csv").write_text("id;price\n1;10,5\n2;20\n")
    run("day-1", {"type": "double"})
    (config.landing_root / "shop" / "day2.csv").write_text("id;price\n3;1.234,5\n")
    run("day-2", {"type": "double"})
    assert {r.id: r.price for r in tables.read("silver.shop").collect()} == {2: 20.0}

    fixed = run("fixed", {"type": "decimal(10,2)", "decimal": ","})  # a new type for silver too
    counts = fixed.results["clean"].metrics["shop"]
    assert (counts["rows_in"], counts["rows_out"], counts["rows_quarantined"]) == (3, 3, 0)
    assert (
        counts["balanced"]
        and "rules changed, so all 2 batch(es) cleaned again" in fixed.results["clean"].details[0]
    )
    prices = {r.id: r.price for r in tables.read("silver.shop").collect()}
    assert prices == {1: Decimal("10.50"), 2: Decimal("20.00"), 3: Decimal("1234.50")}
    quarantined = {
        r["dataset"]: r["count"] for r in tables.read("quarantine.rows").groupBy("dataset").count().collect()
    }
    assert quarantined == {"other": 1}  # shop's two went; other's row stayed
    assert fixed.results["clean"].metrics["other"]["rows_in"] == 0  # its rules did not change

    again = run("again", {"type": "decimal(10,2)", "decimal": ","})
    assert again.results["clean"].metrics["shop"]["rows_in"] == 0  # the same rules: nothing cleaned twice
