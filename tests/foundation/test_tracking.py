"""MLflow tracking on a real SQLite store: what a model's run holds, the champion alias, and
the one-line error for a tracking server that is not there."""

from __future__ import annotations

import json

import pytest
from deepspark.config import ConfigError
from deepspark.tables import Tables
from deepspark.tracking import flat_params, log_model_run, mlflow_record, register_network
from mlflow import MlflowClient


@pytest.fixture
def tracked(config, tmp_path):
    """The test config on the default store: tracking.uri null, SQLite under data_root."""
    return config.model_copy(update={"tracking": config.tracking.model_copy(update={"uri": None})})


def logged_run(config, tmp_path, accuracy: float, run_id: str = "run-1", tables=None):
    model = tmp_path / "model.h5"
    model.write_bytes(b"weights")
    return log_model_run(
        config,
        name="digits_cnn",
        kind="cnn",
        run_id=run_id,
        params={"epochs": 3, "cnn": {"conv": [8, 16]}},
        metrics={"test_accuracy": accuracy, "bag_of_words_baseline": None},
        history=[{"epoch": e, "loss": 1.0 / (e + 1), "accuracy": 0.5 + e / 10} for e in range(3)],
        tables=tables,
        inputs={"gold.digits": 4, "bronze.digits": 0},
        artefacts={"model": [model, tmp_path / "absent.json"]},
    )


def test_a_model_run_holds_params_metrics_per_epoch_inputs_and_artefacts(spark, tracked, tmp_path):
    logged = logged_run(tracked, tmp_path, 0.9, tables=Tables(spark, tracked))
    store = tracked.run.data_root / "mlflow"
    assert tracked.tracking_uri == f"sqlite:///{(store / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=tracked.tracking_uri)
    run = client.get_run(logged.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["deepspark.run_id"] == "run-1"
    assert run.data.params == {"epochs": "3", "cnn.conv": "[8, 16]"}
    assert run.data.metrics["test_accuracy"] == 0.9 and "bag_of_words_baseline" not in run.data.metrics
    assert [(m.step, m.value) for m in client.get_metric_history(logged.run_id, "loss")] == [
        (0, 1.0),
        (1, 0.5),
        (2, pytest.approx(1 / 3)),
    ]
    inputs = {d.dataset.name: json.loads(d.dataset.source) for d in run.inputs.dataset_inputs}
    assert {name: source["delta_table_version"] for name, source in inputs.items()} == {
        "gold.digits@v4": 4,
        "bronze.digits@v0": 0,  # MLflow's own Delta source would leave version 0 out
    }
    assert inputs["gold.digits@v4"]["path"] == f"file://{tmp_path / 'data' / 'tables' / 'gold' / 'digits'}"
    assert [f.path for f in client.list_artifacts(logged.run_id, "model")] == ["model/model.h5"]
    assert run.info.artifact_uri.startswith(f"file://{(store / 'artifacts').resolve()}")


def test_the_champion_alias_stays_on_the_most_accurate_version(spark, tracked, tmp_path):
    tables = Tables(spark, tracked)
    client = MlflowClient(tracking_uri=tracked.tracking_uri)
    first = register_network(
        tracked, logged_run(tracked, tmp_path, 0.90, tables=tables), "digits_cnn", 1, {"test_accuracy": 0.90}
    )
    worse = register_network(
        tracked, logged_run(tracked, tmp_path, 0.80, tables=tables), "digits_cnn", 2, {"test_accuracy": 0.80}
    )
    assert (first.registered.version, first.registered.champion) == (1, True)
    assert (worse.registered.version, worse.registered.champion) == (2, False)
    assert client.get_model_version_by_alias("digits_cnn", "champion").version == 1
    better = register_network(
        tracked, logged_run(tracked, tmp_path, 0.95, tables=tables), "digits_cnn", 3, {"test_accuracy": 0.95}
    )
    holder = client.get_model_version_by_alias("digits_cnn", "champion")
    assert int(holder.version) == 3 and holder.run_id == better.run_id
    assert holder.tags["deepspark.model_version"] == "3"
    assert mlflow_record(better) == {
        "run_id": better.run_id,
        "experiment_id": better.experiment_id,
        "registered_version": 3,
        "champion": True,
    }


def test_a_regressor_is_champion_by_the_lowest_test_rmse(spark, tracked, tmp_path):
    tables = Tables(spark, tracked)
    client = MlflowClient(tracking_uri=tracked.tracking_uri)
    champions = []
    for version, rmse in enumerate([2.0, 2.5, 1.5], start=1):
        logged = logged_run(tracked, tmp_path, 0.0, run_id=f"run-{version}", tables=tables)
        scores = {"test_rmse": rmse, "test_mae": rmse / 2, "test_r2": 0.5}
        champions.append(register_network(tracked, logged, "forecast", version, scores).registered.champion)
    assert champions == [True, False, True]
    holder = client.get_model_version_by_alias("forecast", "champion")
    assert int(holder.version) == 3 and holder.tags["test_rmse"] == "1.500000"


def test_tracking_off_talks_to_no_store(config, tmp_path):
    off = config.model_copy(update={"tracking": config.tracking.model_copy(update={"mlflow": False})})
    assert logged_run(off, tmp_path, 0.9) is None and mlflow_record(None) is None


def test_a_server_that_is_not_there_is_one_line_naming_tracking_uri(spark, config, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = config.model_copy(
        update={"tracking": config.tracking.model_copy(update={"uri": "http://127.0.0.1:9"})}
    )
    with pytest.raises(ConfigError) as raised:
        logged_run(down, tmp_path, 0.9, tables=Tables(spark, down))
    message = str(raised.value)
    assert "key 'tracking.uri'" in message and "http://127.0.0.1:9" in message and "\n" not in message
    assert "tracking.mlflow: false" in message


def test_nested_params_are_flattened_with_dots():
    assert flat_params({"a": 1, "b": {"c": [1], "d": {"e": None}}, "f": {}}) == {
        "a": 1,
        "b.c": [1],
        "b.d.e": None,
        "f": {},
    }
