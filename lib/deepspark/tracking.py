"""MLflow tracking: one MLflow run per trained network and per analytics model, in the
experiment ``tracking.experiment``; trained networks in MLflow's model registry, with an alias
(``tracking.champion_alias``) on the best version.

Each MLflow run holds the model's params, its metrics (per epoch for networks), its plots and
saved model as artefacts, and its Delta inputs as datasets: table path and version, so that the
run says exactly what it read. ``ml.models`` stays the pipeline's own registry; its rows carry
the MLflow run id. With ``tracking.uri`` null the store is SQLite under ``<data_root>/mlflow``,
with artefacts beside it (as for any ``sqlite:///`` URI); a server URI (``http://...``) keeps
its own artefact store.

Only the driver talks to MLflow, after the work is done: a rank never waits on a tracking
server, and a run with ``tracking.mlflow: false`` imports nothing of it.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deepspark.config import Config, ConfigError
from deepspark.results import MlflowRecord
from deepspark.tables.types import hadoop_uri

log = logging.getLogger(__name__)

DEEPSPARK_RUN = "deepspark.run_id"  # tag: the pipeline run that made the MLflow run
REGISTRY_VERSION = "deepspark.model_version"  # tag: the ml.models version of a model version


@dataclass(frozen=True)
class Registered:
    """A network's version in MLflow's registry, and whether it holds the champion alias."""

    version: int
    champion: bool


@dataclass(frozen=True)
class Logged:
    """What one model's tracking produced (None when tracking is off)."""

    run_id: str
    experiment_id: str
    artifact_uri: str
    registered: Registered | None = None


def flat_params(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config as MLflow params: ``{"cnn": {"conv": [32]}}`` -> ``{"cnn.conv": "[32]"}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def mlflow_record(logged: Logged | None) -> MlflowRecord | None:
    """What a stage result says of a model's MLflow run."""
    if logged is None:
        return None
    record: MlflowRecord = {"run_id": logged.run_id, "experiment_id": logged.experiment_id}
    if logged.registered:
        record["registered_version"] = logged.registered.version
        record["champion"] = logged.registered.champion
    return record


def client(config: Config):
    """An MlflowClient on tracking.uri (tracking and registry alike), and the experiment's id.
    One per store and experiment in a process: opening a SQLite store checks its schema."""
    uri, artefacts = config.tracking_uri, None  # a server keeps its own artefact store
    if uri.startswith("sqlite:///"):  # a local store: artefacts beside its database
        store = Path(uri.removeprefix("sqlite:///")).parent
        store.mkdir(parents=True, exist_ok=True)
        artefacts = hadoop_uri(store / "artifacts")
    return _client(uri, config.tracking.experiment, artefacts)


@functools.cache
def _client(uri: str, experiment: str, artefacts: str | None):
    # A server that is down fails in seconds, not after MLflow's default minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    from mlflow import MlflowClient

    mlflow_client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is not None:
        return mlflow_client, found.experiment_id
    return mlflow_client, mlflow_client.create_experiment(experiment, artifact_location=artefacts)


def log_model_run(
    config: Config,
    *,
    name: str,
    kind: str,
    run_id: str,
    params: dict[str, Any],
    metrics: dict[str, float | None],
    history: list[dict[str, float]] | None = None,
    tables=None,
    inputs: dict[str, int] | None = None,
    artefacts: dict[str, list[Path]] | None = None,
) -> Logged | None:
    """One finished MLflow run for model ``name``: ``params`` (nested ones flattened with dots),
    final ``metrics``, ``history`` (one dict of metrics per epoch, logged with the epoch as
    step), ``inputs`` (table name -> Delta version, at its path in ``tables``) as training
    datasets, and ``artefacts`` (artefact folder -> files or folders). None when
    tracking.mlflow is false."""
    if not config.tracking.mlflow:
        return None
    located = {table: (tables.path(table), version) for table, version in (inputs or {}).items()}
    try:
        return _log_model_run(config, name, kind, run_id, params, metrics, history, located, artefacts)
    except Exception as error:  # MlflowException, or a server that cannot be reached
        raise tracking_error(config, error) from error


def register_network(
    config: Config, logged: Logged, name: str, registry_version: int, scores: dict[str, float]
) -> Logged:
    """The model logged in ``logged`` as a new version of ``name`` in MLflow's registry, tagged
    with its test ``scores``; it takes the champion alias when its test_accuracy is at least the
    holder's (a regressor: its test_rmse at most the holder's)."""
    try:
        return _register(config, logged, name, registry_version, scores)
    except Exception as error:
        raise tracking_error(config, error) from error


def tracking_error(config: Config, error: Exception) -> ConfigError:
    """MLflow's refusal as one line that names tracking.uri and what to change."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return config.error(
        "tracking.uri",
        f"= {config.tracking_uri!r}: MLflow failed: {first[:300]}; expected a reachable MLflow "
        "tracking server (or null for the local store), or tracking.mlflow: false",
    )


def _log_model_run(config, name, kind, run_id, params, metrics, history, inputs, artefacts) -> Logged:
    from mlflow.entities import RunStatus

    mlflow_client, experiment_id = client(config)
    tags = {DEEPSPARK_RUN: run_id, "deepspark.model": name, "deepspark.kind": kind}
    created = mlflow_client.create_run(experiment_id, run_name=f"{name} {run_id}", tags=tags)
    mlflow_id = created.info.run_id
    try:
        _fill_run(mlflow_client, mlflow_id, params, metrics, history, inputs, artefacts)
    except Exception:
        mlflow_client.set_terminated(mlflow_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    mlflow_client.set_terminated(mlflow_id, RunStatus.to_string(RunStatus.FINISHED))
    log.info("MLflow run %s (experiment %s) for %s", mlflow_id, experiment_id, name)
    return Logged(mlflow_id, experiment_id, created.info.artifact_uri)


def _fill_run(mlflow_client, mlflow_id, params, metrics, history, inputs, artefacts) -> None:
    from mlflow.entities import DatasetInput, InputTag, Metric, Param

    now = int(time.time() * 1000)
    batch = [Metric(key, float(value), now, 0) for key, value in metrics.items() if value is not None]
    for index, epoch in enumerate(history or []):
        step = int(epoch.get("epoch", index))
        batch += [Metric(key, float(value), now, step) for key, value in epoch.items() if key != "epoch"]
    flat = [Param(key, str(value)[:6000]) for key, value in sorted(flat_params(params).items())]
    for start in range(0, len(batch), 900):  # MLflow's batch limits: 1000 metrics, 100 params
        mlflow_client.log_batch(mlflow_id, metrics=batch[start : start + 900])
    for start in range(0, len(flat), 90):
        mlflow_client.log_batch(mlflow_id, params=flat[start : start + 90])
    datasets = [
        DatasetInput(_delta_dataset(table, path, version), [InputTag("mlflow.data.context", "training")])
        for table, (path, version) in (inputs or {}).items()
    ]
    if datasets:
        mlflow_client.log_inputs(mlflow_id, datasets=datasets)
    for folder, paths in (artefacts or {}).items():
        for path in paths:
            if path.is_dir():
                mlflow_client.log_artifacts(mlflow_id, str(path), f"{folder}/{path.name}")
            elif path.is_file():
                mlflow_client.log_artifact(mlflow_id, str(path), folder)


def _delta_dataset(table: str, path: str, version: int):
    """An MLflow dataset entity for Delta table ``table`` at ``version``."""
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    class PinnedDeltaSource(DeltaDatasetSource):
        """MLflow's Delta source leaves version 0 out of its JSON (a truthiness test): a run
        that read a table's first version must say so as well."""

        def to_dict(self) -> dict[str, Any]:
            return {**super().to_dict(), "delta_table_version": self.delta_table_version}

    source = PinnedDeltaSource(path=hadoop_uri(path), delta_table_version=version)
    return MetaDataset(source, name=f"{table}@v{version}")._to_mlflow_entity()


def _register(
    config: Config, logged: Logged, name: str, registry_version: int, scores: dict[str, float]
) -> Logged:
    from mlflow.exceptions import MlflowException

    mlflow_client, _ = client(config)
    try:
        mlflow_client.create_registered_model(name, description="A deepspark network (see ml.models).")
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    created = mlflow_client.create_model_version(
        name,
        source=f"{logged.artifact_uri}/model",
        run_id=logged.run_id,
        tags={REGISTRY_VERSION: str(registry_version), **{k: f"{v:.6f}" for k, v in scores.items()}},
    )
    alias = config.tracking.champion_alias
    champion = True
    try:
        holder = mlflow_client.get_model_version_by_alias(name, alias)
        if "test_rmse" in scores:
            champion = scores["test_rmse"] <= float(holder.tags.get("test_rmse", "inf"))
        else:
            champion = scores["test_accuracy"] >= float(holder.tags.get("test_accuracy", "-1"))
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
    if champion:
        mlflow_client.set_registered_model_alias(name, alias, created.version)
    return replace(logged, registered=Registered(int(created.version), champion))
