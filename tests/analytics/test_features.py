"""Feature sets: one fitted pyspark.ml Pipeline each, named slot by slot, saved with the Delta
versions it was fitted on, and refused early when the config names what the input lacks."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from deepspark.config import ConfigError, FeaturesConfig, FeatureSet, load_config
from deepspark.lineage import latest_features
from deepspark.stages.features import (
    Inputs,
    build_feature_set,
    feature_layout,
    feature_pipeline,
    query_view,
    to_gold,
)
from deepspark.tables import Tables

PEOPLE = "id long, spend double, visits int, country string, seen timestamp, note string, rating int"
ROWS = [
    (1, 10.0, 1, "FR", datetime(2024, 1, 5, 10), "great tea, fast delivery", 5),
    (2, None, 4, "DE", datetime(2024, 2, 6, 11), "awful coffee", 1),
    (3, 30.0, 2, "FR", datetime(2024, 3, 7, 12), "great coffee", 4),
    (4, 50.0, None, None, datetime(2024, 4, 8, 13), "late delivery, awful", 2),
]


@pytest.fixture
def people(spark):
    return spark.createDataFrame(ROWS, PEOPLE)


def spec(**fields) -> FeatureSet:
    return FeatureSet.model_validate({"input": "silver.people", "key": "id", **fields})


def test_every_slot_is_named_and_values_land_where_their_names_say(spark, people):
    feature_set = spec(
        numeric=["spend", "visits"],
        categorical=["country"],
        buckets={"spend": [float("-inf"), 20, float("inf")]},
        dates={"seen": ["month"]},
        derive={"happy": "rating >= 4"},
        label="happy",
    )
    model = feature_pipeline(feature_set).fit(people)
    layout = feature_layout(model, feature_set)
    assert layout.names == [
        "spend", "visits", "seen_month",
        "spend in [-inf, 20)", "spend in [20, inf)",
        "country=FR", "country=DE", "country=(other)",
    ]  # fmt: skip
    assert layout.kinds == ["numeric"] * 3 + ["indicator"] * 5
    gold = {r.id: r for r in to_gold(model.transform(people), feature_set).collect()}
    slot = {name: i for i, name in enumerate(layout.names)}
    assert gold[2].features[slot["spend"]] == 30.0  # the median of 10, 30, 50 fills the gap
    assert gold[2].spend is None  # ... while the source column keeps its own (missing) value
    assert gold[3].features[slot["seen_month"]] == 3
    assert (
        gold[1].features[slot["spend in [-inf, 20)"]] == 1
        and gold[3].features[slot["spend in [20, inf)"]] == 1
    )
    assert gold[4].features[slot["country=(other)"]] == 1  # a null country has its own slot
    assert gold[1].happy is True and "happy" not in layout.names  # the label stays out of the vector
    assert len(gold[1].features_scaled) == len(layout.names)

    unseen = spark.createDataFrame([(9, 1.0, 1, "IT", datetime(2024, 5, 1), "ok", 3)], PEOPLE)
    row = to_gold(model.transform(unseen), feature_set).first()
    assert row.features[slot["country=(other)"]] == 1 and row.features[slot["country=FR"]] == 0


@pytest.mark.parametrize(
    "text,size,first",
    [
        ({"column": "note", "method": "tfidf", "min_df": 2}, 4, "note:"),  # awful, delivery, great, coffee
        ({"column": "note", "method": "hashing_tfidf", "vocab_size": 16}, 16, "note:#0"),
        ({"column": "note", "method": "word2vec", "vector_size": 5, "min_df": 1}, 5, "note:w2v[0]"),
    ],
)
def test_text_becomes_words_hashed_buckets_or_embeddings(spark, people, text, size, first):
    feature_set = spec(text=text, scale=False)
    model = feature_pipeline(feature_set).fit(people)
    layout = feature_layout(model, feature_set)
    assert len(layout.names) == size and layout.names[0].startswith(first) and set(layout.kinds) == {"text"}
    gold = to_gold(model.transform(people), feature_set)
    assert "features_scaled" not in gold.columns
    assert {len(r.features) for r in gold.collect()} == {size}
    if text["method"] == "tfidf":
        assert sorted(layout.names) == ["note:awful", "note:coffee", "note:delivery", "note:great"]


def test_activity_counts_spend_without_refunds_and_the_favourite_channel(spark, base_config):
    orders = spark.createDataFrame(
        [
            (1, 1, datetime(2024, 1, 1), 10.0, ["a", "b"], "web"),
            (2, 1, datetime(2024, 1, 11), 20.0, ["a"], "web"),
            (3, 1, datetime(2024, 1, 12), -5.0, ["a"], "app"),
            (4, 2, datetime(2024, 1, 21), 7.5, ["c", "d", "e"], "store"),
        ],
        "order_id long, customer_id long, order_ts timestamp, amount double, items array<string>, "
        "channel string",
    )
    customers = spark.createDataFrame(
        [
            (1, "FR", "25-34", datetime(2023, 12, 22)),
            (2, "DE", "65+", datetime(2024, 1, 20)),
            (3, "IT", "18-24", None),
        ],
        "customer_id long, country string, age_band string, signup_ts timestamp",
    )
    view = base_config.features.views["customer_activity"]  # the sample shop's, from conf/base
    tables = {"silver.orders": orders, "silver.customers": customers}
    rows = {r.customer_id: r for r in query_view(spark, view, tables).collect()}
    assert set(rows) == {1, 2}  # no orders, no activity
    assert (rows[1].frequency, rows[1].monetary, rows[1].recency_days) == (2, 30.0, 10)
    assert (rows[1].favourite_channel, rows[1].avg_basket_size, rows[1].tenure_days) == ("web", 1.5, 30)
    assert (rows[2].recency_days, rows[2].avg_basket_size) == (0, 3.0)


@pytest.fixture
def people_config(base_config, tmp_path):
    """A config with one feature set over silver.people, set by --set so errors name it."""

    def make(*overrides: str):
        return load_config(
            env="local",
            overrides=[
                f"run.data_root={tmp_path / 'data'}",
                "features.sets={}",
                "analytics.trees={}",
                "analytics.kmeans=null",
                "features.sets.people.input=silver.people",
                "features.sets.people.key=id",
                *overrides,
            ],
            environ={},
        )

    return make


def test_sets_over_one_input_read_it_once_and_the_last_frees_it(spark, people, people_config):
    config = people_config("features.sets.people.numeric=[spend]")
    sets = {
        "first": spec(numeric=["spend"]),
        "second": spec(numeric=["visits"]),
        "other": spec(input="silver.visits", numeric=["visits"]),
    }
    tables = Tables(spark, config)
    tables.write(people, "silver.people", mode="overwrite")
    tables.write(people, "silver.visits", mode="overwrite")
    inputs = Inputs(tables, config, sets)
    shared = inputs.read("first")
    assert inputs.read("second") is shared and inputs.read("other") is not shared
    assert shared.storageLevel.useMemory
    inputs.done("first")
    assert shared.storageLevel.useMemory  # "second" still reads it
    inputs.done("second")
    assert not shared.storageLevel.useMemory
    other = inputs.read("other")
    inputs.close()
    assert not other.storageLevel.useMemory


def test_fitted_once_per_input_version_then_reused(spark, people, people_config):
    config = people_config("features.sets.people.numeric=[spend, visits]")
    tables = Tables(spark, config)
    tables.write(people, "silver.people", mode="overwrite")
    first = build_feature_set(tables, config, "people", config.features.sets["people"])
    again = build_feature_set(tables, config, "people", config.features.sets["people"])
    assert (first["reused_model"], first["rewritten"]) == (False, True)
    assert (again["reused_model"], again["rewritten"], again["version"]) == (True, False, first["version"])
    assert first["inputs"] == {"silver.people": 0} and first["rows"] == 4

    tables.write(people.limit(2), "silver.people", mode="append")  # silver moves on: fit again
    moved = build_feature_set(tables, config, "people", config.features.sets["people"])
    assert (moved["reused_model"], moved["inputs"], moved["rows"]) == (False, {"silver.people": 1}, 6)
    gold, latest = latest_features(config, "people", tables)
    assert gold.count() == 6 and latest["layout"]["names"] == ["spend", "visits"]
    assert latest["model"] != first["model"]


def test_a_view_over_two_tables_with_a_composite_key_reaches_gold_pinned(spark, people_config):
    view = (
        "SELECT v.shop, v.day, v.visitors, s.revenue FROM {silver.visits} v "
        "JOIN {silver.sales} s ON v.shop = s.shop AND v.day = s.day"
    )
    config = people_config(
        f"features.views={{per_day: {json.dumps(view)}}}",
        "features.sets.people.numeric=[spend]",  # the fixture's set, not built here
        "features.sets.days.input=per_day",
        "features.sets.days.key=[shop, day]",
        "features.sets.days.numeric=[visitors, revenue]",
    )
    tables = Tables(spark, config)
    visits = spark.createDataFrame(
        [("a", 1, 10.0), ("a", 2, 12.0), ("b", 1, 7.0)], "shop string, day int, visitors double"
    )
    sales = spark.createDataFrame(
        [("a", 1, 100.0), ("a", 2, 90.0), ("b", 1, 30.0)], "shop string, day int, revenue double"
    )
    tables.write(visits, "silver.visits", mode="overwrite")
    tables.write(sales, "silver.sales", mode="overwrite")
    extra = spark.createDataFrame([("c", 1, 1.0)], "shop string, day int, revenue double")
    tables.write(extra, "silver.sales", mode="append")  # version 1: a shop with no visits
    built = build_feature_set(tables, config, "days", config.features.sets["days"])
    assert built["inputs"] == {"silver.visits": 0, "silver.sales": 1} and built["rows"] == 3
    gold = tables.read("gold.days_features")
    assert gold.columns[:2] == ["shop", "day"]
    assert sorted((r.shop, r.day, r.features) for r in gold.collect()) == [
        ("a", 1, [10.0, 100.0]),
        ("a", 2, [12.0, 90.0]),
        ("b", 1, [7.0, 30.0]),
    ]


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "features.sets.people.numeric=[spend, age]",
            "key 'features.sets.people.numeric' names column 'age', which silver.people does not have; "
            "expected one of: id, spend, visits, country, seen, note, rating",
        ),
        (
            "features.sets.people.numeric=[spend, visit]",
            "names column 'visit', which silver.people does not have; "
            "did you mean 'visits'? expected one of:",
        ),
        (
            "features.sets.people.numeric=[country]",
            "names 'country' of type string: expected a numeric column "
            "(give it one in clean: clean.datasets.people.columns.country.type, e.g. double)",
        ),
        ("features.sets.people.text={column: rating}", "key 'features.sets.people.text.column' = 'rating'"),
        (
            "features.sets.people.derive={x: 'ratin >= 4'}",
            "key 'features.sets.people.derive.x' = 'ratin >= 4'",
        ),
    ],
)
def test_a_set_naming_what_its_input_lacks_fails_before_fitting(
    spark, people, people_config, override, message
):
    config = people_config("features.sets.people.numeric=[spend]", override)
    tables = Tables(spark, config)
    tables.write(people, "silver.people", mode="overwrite")
    with pytest.raises(ConfigError) as error:
        build_feature_set(tables, config, "people", config.features.sets["people"])
    assert str(error.value).startswith(f"--set {override}: ") and message in str(error.value)
    assert not (config.models_root / "features" / "people").exists()  # nothing fitted, nothing saved


def test_a_set_over_an_input_with_no_rows_names_the_input_and_where_its_rows_went(
    spark, people, people_config
):
    config = people_config("features.sets.people.numeric=[spend]")
    tables = Tables(spark, config)
    tables.write(people.limit(0), "silver.people", mode="overwrite")
    with pytest.raises(ConfigError) as error:
        build_feature_set(tables, config, "people", config.features.sets["people"])
    assert str(error.value) == (
        "--set features.sets.people.input=silver.people: key 'features.sets.people.input' = "
        "'silver.people': "
        "no rows to fit on (read silver.people v0); the rows were quarantined or filtered before this: "
        "see the clean line and quarantine.rows"
    )


def test_a_set_with_nothing_to_assemble_is_refused():
    with pytest.raises(ValueError, match="needs numeric, categorical, buckets, dates or text"):
        FeaturesConfig.model_validate({"sets": {"empty": {"input": "silver.x", "key": "id"}}})
