"""The Great Expectations gate: suites from conf/, severities, persisted results, Data Docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deepspark.config import ConfigError, Expectation, ValidateConfig
from deepspark.run import Run, StageFailed
from deepspark.stages.validate import RESULTS, ExpectationError, build_suite, open_context, validate
from pyspark import StorageLevel


def suite_config(**suites) -> ValidateConfig:
    return ValidateConfig(suites={d: [Expectation.model_validate(e) for e in es] for d, es in suites.items()})


@pytest.fixture
def silver_orders(spark, tables):
    rows = [(1, 10.0, "web"), (2, -3.0, "app"), (3, 7.5, "fax"), (4, None, "web")]
    tables.write(spark.createDataFrame(rows, "order_id long, amount double, channel string"), "silver.orders")


def run_validate(spark, config, tables, settings: ValidateConfig, run_id="v-1") -> Run:
    run = Run(config.model_copy(update={"validate_": settings}), spark, tables, run_id)
    run.results["validate"] = validate(run)
    return run


def test_an_unknown_expectation_or_bad_argument_names_the_file_and_key(config):
    open_context(Path(config.run.data_root) / "gx")
    misspelt = suite_config(
        orders=[
            {"expectation": "expect_table_row_count_to_be_between"},
            {"expectation": "expect_column_values_to_be_betwen"},
        ]
    )
    with pytest.raises(
        ConfigError,
        match=r"^\S*conf/base/validate.yaml: key 'validate.suites.orders\[1\].expectation' = "
        r"'expect_column_values_to_be_betwen': "
        r"did you mean 'expect_column_values_to_be_between'\? expected the ",
    ):
        build_suite(config.model_copy(update={"validate_": misspelt}), "orders")
    with pytest.raises(
        ConfigError,
        match=r"'expect_magic': expected the snake_case name.*e.g. expect_column_values_to_not_be_null$",
    ):
        build_suite(
            config.model_copy(update={"validate_": suite_config(orders=[{"expectation": "expect_magic"}])}),
            "orders",
        )
    wrong_argument = suite_config(
        orders=[{"expectation": "expect_column_values_to_not_be_null", "kwargs": {"col": "x"}}]
    )
    with pytest.raises(
        ConfigError, match=r"^\S*conf/base/validate.yaml: key 'validate.suites.orders\[0\].kwargs'"
    ):
        build_suite(config.model_copy(update={"validate_": wrong_argument}), "orders")


def test_warnings_are_recorded_and_the_run_goes_on(spark, config, tables, silver_orders):
    settings = suite_config(
        orders=[
            {"expectation": "expect_column_values_to_be_unique", "kwargs": {"column": "order_id"}},
            {
                "expectation": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "channel", "value_set": ["web", "app"]},
                "severity": "warning",
            },
        ]
    )
    run = run_validate(spark, config, tables, settings)
    result = run.results["validate"]
    assert result.status == "warning"
    assert result.notes == [
        "warning: expect_column_values_to_be_in_set on silver.orders.channel: 1 unexpected values (25%)"
    ]
    stored = {r.expectation: (r.success, r.severity) for r in tables.read(RESULTS).collect()}
    assert stored == {
        "expect_column_values_to_be_unique": (True, "critical"),
        "expect_column_values_to_be_in_set": (False, "warning"),
    }
    saved = json.loads((run.run_dir / "validation" / "orders.json").read_text())
    assert saved["success"] is False and len(saved["results"]) == 2
    # Unexpected values found: the suite ran again with samples of them, replacing the first
    # result in GX's store (one per run) rather than adding a second.
    in_set = next(
        r for r in saved["results"] if r["expectation_config"]["type"] == "expect_column_values_to_be_in_set"
    )
    assert in_set["result"]["partial_unexpected_counts"] == [{"value": "fax", "count": 1}]
    stored_runs = list((config.run.data_root / "gx").rglob("validations/orders/**/*.json"))
    assert len(stored_runs) == 1
    docs = Path(result.metrics["data_docs"].removeprefix("file://"))
    assert docs.name == "index.html" and docs.is_file()
    assert "orders" in "".join(p.name for p in docs.parent.rglob("*.html"))
    # GX caches a batch's DataFrame by default and never frees it; validate asks it not to.
    assert tables.read("silver.orders").storageLevel == StorageLevel(False, False, False, False, 1)


def test_a_suite_that_finds_no_unexpected_value_runs_once_without_samples(
    spark, config, tables, silver_orders
):
    settings = suite_config(
        orders=[{"expectation": "expect_column_values_to_be_unique", "kwargs": {"column": "order_id"}}]
    )
    run = run_validate(spark, config, tables, settings)
    assert run.results["validate"].status == "ok"
    (result,) = json.loads((run.run_dir / "validation" / "orders.json").read_text())["results"]
    assert result["result"]["unexpected_count"] == 0 and result["result"]["element_count"] == 4
    assert "partial_unexpected_counts" not in result["result"]  # the counts-only run, kept


def test_a_critical_failure_stops_the_run_naming_expectation_column_and_value(
    spark, config, tables, silver_orders
):
    settings = suite_config(
        orders=[
            {
                "expectation": "expect_column_values_to_be_between",
                "kwargs": {"column": "amount", "min_value": 0},
            },
            {
                "expectation": "expect_column_max_to_be_between",
                "kwargs": {"column": "amount", "max_value": 5},
            },
        ]
    )
    with pytest.raises(StageFailed) as failure:
        run_validate(spark, config, tables, settings)
    message = str(failure.value)
    assert "expect_column_values_to_be_between on silver.orders.amount: 1 unexpected values" in message
    assert "expect_column_max_to_be_between on silver.orders.amount: observed 10.0" in message
    # The results are stored before the run stops.
    assert tables.read(RESULTS).filter("not success").count() == 2
    # The same version again: the verdicts are kept, not recomputed, and still stop the run.
    with pytest.raises(StageFailed, match="expect_column_max_to_be_between on silver.orders.amount"):
        run_validate(spark, config, tables, settings, run_id="v-2")
    assert tables.read(RESULTS).filter("run_id = 'v-2'").count() == 0


def test_a_version_already_validated_by_the_same_suite_keeps_its_verdicts(
    spark, config, tables, silver_orders
):
    settings = suite_config(
        orders=[
            {"expectation": "expect_column_values_to_be_unique", "kwargs": {"column": "order_id"}},
            {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
        ]
    )
    settings.stop_on_critical = False
    first = run_validate(spark, config, tables, settings, "first").results["validate"]
    again = run_validate(spark, config, tables, settings, "again")
    kept = again.results["validate"]
    assert kept.notes == [
        *first.notes,
        "silver.orders v0: validated by run first with this suite; its verdicts kept",
    ]
    assert kept.metrics["orders"] == first.metrics["orders"] and kept.status == first.status == "warning"
    assert kept.metrics["data_docs"] == first.metrics["data_docs"]
    assert json.loads((again.run_dir / "validation" / "orders.json").read_text())["success"] is False
    assert tables.read(RESULTS).filter("run_id = 'again'").count() == 0  # it validated nothing

    tables.write(
        spark.createDataFrame([(5, 1.0, "web")], "order_id long, amount double, channel string"),
        "silver.orders",
    )
    redone = run_validate(spark, config, tables, settings, "new-rows").results["validate"]
    assert redone.metrics["orders"]["version"] == 1 and not any("kept" in note for note in redone.notes)
    assert tables.read(RESULTS).filter("run_id = 'new-rows'").count() == 2
    stricter = suite_config(
        orders=[{"expectation": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]
    )
    changed = run_validate(spark, config, tables, stricter, "new-suite").results["validate"]
    assert changed.status == "ok" and tables.read(RESULTS).filter("run_id = 'new-suite'").count() == 1


def test_stop_on_critical_false_records_critical_failures_without_stopping(
    spark, config, tables, silver_orders
):
    settings = suite_config(
        orders=[{"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}}]
    )
    settings.stop_on_critical = False
    result = run_validate(spark, config, tables, settings).results["validate"]
    assert result.status == "warning"
    assert result.notes[0].startswith("critical: expect_column_values_to_not_be_null on silver.orders.amount")


def test_an_expectation_gx_cannot_evaluate_stops_the_stage_with_its_error(
    spark, config, tables, silver_orders
):
    # GX catches the error (a mean of text) and reports a failure with no values; it must not
    # pass for a plain failed expectation.
    settings = suite_config(
        orders=[
            {
                "expectation": "expect_column_mean_to_be_between",
                "kwargs": {"column": "channel", "min_value": 0, "max_value": 1},
                "severity": "warning",
            }
        ]
    )
    with pytest.raises(ExpectationError) as failure:
        run_validate(spark, config, tables, settings)
    message = str(failure.value)
    assert message.startswith(
        "expect_column_mean_to_be_between on silver.orders.channel (version 0) could not run:"
    )
    assert len(message) > len("... could not run: ") + 20, message
