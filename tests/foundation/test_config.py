"""Config: base + overlay + --set, typed once; errors name the file, key and expected value."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from deepspark.config import DEFAULT_CONF_DIR, ConfigError, load_config


@pytest.fixture
def conf(tmp_path) -> Path:
    folder = tmp_path / "conf"
    shutil.copytree(DEFAULT_CONF_DIR, folder, ignore=shutil.ignore_patterns("secrets.yaml"))
    return folder


def test_the_shipped_conf_loads_for_every_environment():
    local = load_config(env="local", environ={})
    cluster = load_config(env="cluster", environ={})
    assert local.spark.master == "local[*]"
    assert cluster.spark.master is None
    assert "io.delta.sql.DeltaSparkSessionExtension" in cluster.spark.conf.values()


def test_overlay_and_overrides_apply_in_order(conf):
    (conf / "local" / "tables.yaml").write_text("max_records_per_file: 500\n")
    config = load_config(conf, "local", ["tables.max_records_per_file=7", "run.seed=3"], {})
    assert config.tables.max_records_per_file == 7
    assert config.run.seed == 3
    assert config.tables.engine == "auto"  # untouched keys keep base values


def test_unknown_key_names_the_file_and_the_known_keys(conf):
    (conf / "local" / "tables.yaml").write_text("engin: rs\n")
    with pytest.raises(ConfigError) as error:
        load_config(conf, "local", environ={})
    message = str(error.value)
    assert str(conf / "local" / "tables.yaml") in message
    assert "unknown key 'tables.engin'" in message
    assert "engine" in message


def test_wrong_type_names_file_key_and_expected_value(conf):
    (conf / "base" / "generate.yaml").write_text("customers: lots\n")
    with pytest.raises(ConfigError) as error:
        load_config(conf, "local", environ={})
    message = str(error.value)
    assert f"{conf / 'base' / 'generate.yaml'}: key 'generate.customers' = 'lots'" in message
    assert "valid integer" in message


def test_wrong_value_from_an_override_names_the_override(conf):
    with pytest.raises(
        ConfigError,
        match=r"--set tables.engine=duckdb: key 'tables.engine'.*"
        r"'auto', 'spark' or 'rs'",
    ):
        load_config(conf, "local", ["tables.engine=duckdb"], {})


def test_nested_unknown_key_in_a_named_entry_lists_the_entry_keys(conf):
    (conf / "base" / "ingest.yaml").write_text(
        "sources:\n  orders:\n    format: csv\n    path: x\n    delimitr: ';'\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"unknown key 'ingest.sources.orders.delimitr'; "
        r"expected one of: columns, ddl, fallback_encoding, format, null_values, options, path",
    ):
        load_config(conf, "local", environ={})


def test_unknown_section_file_and_bad_override_syntax_are_rejected(conf):
    (conf / "base" / "spakr.yaml").write_text("master: x\n")
    with pytest.raises(ConfigError, match="unknown section file 'spakr.yaml'"):
        load_config(conf, "local", environ={})
    (conf / "base" / "spakr.yaml").unlink()
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(conf, "local", ["spark.master"], {})


def test_a_missing_overlay_is_an_error_but_local_may_be_left_out(conf):
    with pytest.raises(ConfigError, match="overlay folder for environment 'staging' is missing"):
        load_config(conf, "staging", environ={})
    shutil.rmtree(conf / "local")
    assert load_config(conf, "local", environ={}).spark.master is None  # conf/local set local[*]


def test_relative_folders_belong_to_the_project_not_the_working_directory(conf, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    config = load_config(conf, "local", ["run.runs_dir=elsewhere/runs"], environ={})
    assert config.run.data_root == conf.resolve().parent / "data"
    assert config.run.runs_dir == conf.resolve().parent / "elsewhere" / "runs"
    assert config.landing_root == conf.resolve().parent / "data" / "landing"


def test_secrets_come_from_env_or_ignored_file_and_are_redacted(conf):
    config = load_config(conf, "local", environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": "s3cr3t-from-env"})
    assert config.secrets.pii_hmac_key.get_secret_value() == "s3cr3t-from-env"
    dumped = json.dumps(config.redacted())
    assert "s3cr3t-from-env" not in dumped and "**********" in dumped

    (conf / "local" / "secrets.yaml").write_text("pii_hmac_key: test-key-from-file\n")
    from_file = load_config(conf, "local", environ={})
    assert from_file.secrets.pii_hmac_key.get_secret_value() == "test-key-from-file"
    assert "s3cr3t" not in repr(from_file) and "s3cr3t" not in str(from_file.redacted())


def test_secrets_in_tracked_config_or_overrides_are_refused(conf):
    (conf / "base" / "run.yaml").write_text("secrets:\n  pii_hmac_key: oops\n")
    with pytest.raises(ConfigError, match="secrets do not belong in tracked config"):
        load_config(conf, "local", environ={})
    (conf / "base" / "run.yaml").write_text("seed: 1\n")
    with pytest.raises(ConfigError, match="secrets come only from DEEPSPARK_SECRET_"):
        load_config(conf, "local", ["secrets.pii_hmac_key=x"], {})


def test_unknown_secret_name_is_rejected(conf):
    with pytest.raises(ConfigError, match="environment variable DEEPSPARK_SECRET_API_TOKEN"):
        load_config(conf, "local", environ={"DEEPSPARK_SECRET_API_TOKEN": "x"})


def test_digest_changes_with_config_but_not_with_secret_values(conf):
    a = load_config(conf, "local", environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": "one"})
    b = load_config(conf, "local", environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": "two"})
    c = load_config(conf, "local", ["run.seed=9"], {"DEEPSPARK_SECRET_PII_HMAC_KEY": "one"})
    assert a.digest() == b.digest() != c.digest()


def test_a_csv_source_without_its_columns_says_what_to_declare(conf):
    (conf / "base" / "ingest.yaml").write_text("sources:\n  people:\n    format: csv\n    path: people\n")
    with pytest.raises(ConfigError, match=r"ingest.yaml: key 'ingest.sources.people'.*needs 'columns'"):
        load_config(conf, "local", [], {})


def test_a_numbered_range_of_csv_columns_expands_in_order(conf):
    (conf / "base" / "ingest.yaml").write_text(
        "sources:\n  digits:\n    format: csv\n    path: d\n    columns: [label, px8..px11, id]\n"
    )
    config = load_config(conf, "local", [], {})
    assert config.ingest.sources["digits"].columns == ["label", "px8", "px9", "px10", "px11", "id"]
    (conf / "base" / "ingest.yaml").write_text(
        "sources:\n  digits:\n    format: csv\n    path: d\n    columns: [a3..b9]\n"
    )
    with pytest.raises(ConfigError, match=r"key 'ingest.sources.digits.columns'.*'a3..b9': expected a range"):
        load_config(conf, "local", [], {})


def test_nulls_constant_without_a_fill_value_is_refused(conf):
    (conf / "base" / "clean.yaml").write_text(
        "datasets:\n  people:\n    keys: [id]\n    columns:\n      country: {nulls: constant}\n"
    )
    with pytest.raises(ConfigError, match=r"clean.yaml: key 'clean.datasets.people.columns.country'.*fill"):
        load_config(conf, "local", [], {})


def test_a_decimal_comma_on_a_column_that_is_not_numeric_is_refused(conf):
    (conf / "base" / "clean.yaml").write_text(
        "datasets:\n  people:\n    keys: [id]\n    columns:\n      born: {type: date, decimal: ','}\n"
    )
    with pytest.raises(ConfigError, match=r"key 'clean.datasets.people.columns.born'.*needs a numeric type"):
        load_config(conf, "local", [], {})


@pytest.mark.parametrize(
    "override,expected",
    [
        ("analytics.kmeans.k=1", r"key 'analytics.kmeans.k' = 1: expected k >= 2"),
        ("analytics.kmeans.k=[6,3]", r"key 'analytics.kmeans.k' = \[6, 3\]: expected k >= 2, or a range"),
        (
            "analytics.rules.min_support=0",
            r"key 'analytics.rules.min_support' = 0: expected .*greater than 0",
        ),
        (
            "analytics.rules.min_support=1.5",
            r"key 'analytics.rules.min_support' = 1.5: expected .*less than or equal to 1",
        ),
        ("analytics.trees.customer_value.impurity=gini", r"a regressor takes variance, not gini"),
        ("features.sets.reviews.numeric=[sentiment]", r"label 'sentiment' is also a feature"),
        ("features.sets.reviews.buckets={rating: [3, 1]}", r"at least 3 strictly increasing splits"),
    ],
)
def test_analytics_and_feature_values_out_of_range_name_the_override(conf, override, expected):
    with pytest.raises(ConfigError, match=rf"--set {re.escape(override)}: .*{expected}"):
        load_config(conf, "local", [override], {})


def test_analytics_must_name_feature_sets_that_exist_and_trees_need_a_label(conf):
    with pytest.raises(ConfigError) as error:
        load_config(conf, "local", ["analytics.kmeans.features=shoppers"], {})
    assert str(error.value) == (
        "--set analytics.kmeans.features=shoppers: key 'analytics.kmeans.features' = 'shoppers': "
        "expected a feature set from features.sets: customer_rfm, customer_value, reviews"
    )
    with pytest.raises(ConfigError) as error:
        load_config(conf, "local", ["analytics.trees.segments_tree.features=customer_rfm"], {})
    assert (
        "key 'analytics.trees.segments_tree.features' = 'customer_rfm': "
        "a tree needs a feature set with a label" in str(error.value)
    )
    (conf / "base" / "analytics.yaml").write_text("kmeans: {features: nowhere}\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(conf / 'base' / 'analytics.yaml'))}: key"):
        load_config(conf, "local", [], {})


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "engine: [rs\n",
            r"tables.yaml: not valid YAML: line 2, column 1: expected ',' or '\]', but got '<stream end>'$",
        ),
        (
            "engine: rs\n*_size: 7\n",
            r"tables.yaml: not valid YAML: line 2, column 1: found undefined alias '_size' "
            r'\(a name starting with \*, such as a glob, must be quoted: "\*_size"\)$',
        ),
        (
            "- engine\n- rs\n",
            r"tables.yaml: expected a mapping of keys to values at the top level, found list",
        ),
    ],
    ids=["broken YAML", "an unquoted glob", "a list, not a mapping"],
)
def test_a_file_that_is_not_a_yaml_mapping_is_named(conf, text, expected):
    (conf / "local" / "tables.yaml").write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_config(conf, "local", environ={})


def test_rules_over_a_csv_column_that_is_never_split_are_refused_at_load(conf):
    (conf / "base" / "ingest.yaml").write_text(
        "sources: {baskets: {format: csv, path: b, columns: [id, items]}}\n"
    )
    (conf / "base" / "clean.yaml").write_text("datasets: {baskets: {keys: [id]}}\n")
    sets = ["analytics.rules={input: silver.baskets, items: items}", "validate.suites={}"]
    with pytest.raises(ConfigError) as refused:
        load_config(conf, "local", sets, environ={})
    assert "key 'analytics.rules.items' = 'items': silver.baskets.items is text (a CSV column)" in str(
        refused.value
    )
    assert "add clean.datasets.baskets.split: {items: '|'}" in str(refused.value)
    split = [*sets, "clean.datasets.baskets.split={items: '|'}"]
    assert load_config(conf, "local", split, environ={}).analytics.rules.items == "items"
