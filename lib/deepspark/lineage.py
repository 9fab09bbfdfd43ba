"""Where fitted models live and what they were made from.

Each saved model is a folder ``<data_root>/models/<kind>/<name>/``: the pyspark.ml model in
``model/`` and ``manifest.json`` beside it, naming the Delta table versions it was fitted on,
the config that shaped it and its run. The manifest is what ties a model to its data.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepspark.config import Config
from deepspark.tables import ConcurrentWriteError, TableError, Tables, Txn, hadoop_uri

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

MANIFEST = "manifest.json"
LATEST = "latest.json"  # beside a feature set's versions: the one the features stage last wrote


def fingerprint(*parts: Any) -> str:
    """A short, stable hash of JSON-able parts (a config section, table versions)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def save_model(model: Any, folder: Path, manifest: dict[str, Any]) -> Path:
    """Save a pyspark.ml model (anything with ``write()``) and its manifest; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    model.write().overwrite().save(hadoop_uri(folder / "model"))
    return write_manifest(folder, manifest)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """``manifest.json`` beside a saved model: what it was made from, and when."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {**manifest, "saved_at": datetime.now(UTC).isoformat()}
    (folder / MANIFEST).write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    return folder


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def model_uri(folder: Path) -> str:
    """What ``<Model>.load`` takes for a folder written by :func:`save_model`."""
    return hadoop_uri(folder / "model")


MODELS_TABLE = "ml.models"
REGISTER_ATTEMPTS = 20
REGISTRY_SCHEMA = (
    "name string, model_version int, kind string, uri string, run_id string, registered_at timestamp, "
    "table_name string, table_version long, sources string, validation string, config_hash string, "
    "fingerprint string, metrics string, mlflow_run_id string"
)


def register_model(tables, entry: dict[str, Any]) -> int:
    """Append a trained model to ``ml.models`` as the next version of its name; returns it.

    ``entry`` holds the columns of :data:`REGISTRY_SCHEMA` but ``model_version`` and
    ``registered_at``; ``sources``, ``validation`` and ``metrics`` are dicts (stored as JSON);
    ``mlflow_run_id`` may be absent (tracking off).
    """
    from pyspark.sql import functions as F

    columns = [part.split()[0] for part in REGISTRY_SCHEMA.split(", ")]
    for _ in range(REGISTER_ATTEMPTS):
        version = 1
        if tables.exists(MODELS_TABLE):
            found = tables.read(MODELS_TABLE).filter(F.col("name") == entry["name"])
            version = (found.agg(F.max("model_version")).first()[0] or 0) + 1
        row = {
            **entry,
            "mlflow_run_id": entry.get("mlflow_run_id"),
            "model_version": version,
            "registered_at": datetime.now(UTC),
            **{key: json.dumps(entry[key], default=str) for key in ("sources", "validation", "metrics")},
        }
        frame = tables.spark.createDataFrame([tuple(row[c] for c in columns)], REGISTRY_SCHEMA)
        # The version is the name's transaction: of two registrations that read the same highest
        # version, one commits it and the other is told so (skipped), reads again and takes the next.
        try:
            txn = Txn(f"deepspark.models.{entry['name']}", version)
            if not tables.write(frame, MODELS_TABLE, txn=txn, evolve_schema=True).skipped:
                return version
        except ConcurrentWriteError:
            continue
    raise TableError(
        f"{MODELS_TABLE}: model {entry['name']!r} lost {REGISTER_ATTEMPTS} races for a version to "
        "concurrent registrations; register it again"
    )


def registered_version(tables, name: str, identity: str) -> int | None:
    """The version ``ml.models`` holds for model ``name`` with fingerprint ``identity`` (None: not
    registered yet)."""
    from pyspark.sql import functions as F

    if not tables.exists(MODELS_TABLE):
        return None
    found = tables.read(MODELS_TABLE).filter((F.col("name") == name) & (F.col("fingerprint") == identity))
    return found.agg(F.min("model_version")).first()[0]


USAGE_TABLE = "ml.model_usage"
USAGE_SCHEMA = "run_id string, name string, model_version int, fingerprint string, used_at timestamp"


def record_usage(tables, run_id: str, name: str, version: int, identity: str) -> None:
    """A run that reuses a registered model says so in ``ml.model_usage``: its registry row and
    manifest stay as the training run wrote them."""
    row = (run_id, name, version, identity, datetime.now(UTC))
    tables.write(tables.spark.createDataFrame([row], USAGE_SCHEMA), USAGE_TABLE)


def describe_models(tables, name: str | None = None) -> list[str]:
    """One line per registered model version (oldest first): the table version it read, its
    training run, the validation runs behind it, its test metrics, how often it was reused and
    its MLflow run."""
    from pyspark.sql import functions as F

    if not tables.exists(MODELS_TABLE):
        return []
    models = tables.read(MODELS_TABLE)
    if name is not None:
        models = models.filter(F.col("name") == name)
    uses: dict[tuple[str, int], int] = {}
    if tables.exists(USAGE_TABLE):
        for row in tables.read(USAGE_TABLE).groupBy("name", "model_version").count().collect():
            uses[(row["name"], row["model_version"])] = row["count"]
    lines = []
    for row in models.orderBy("name", "model_version").collect():
        validation = json.loads(row["validation"]).get("runs") or {}
        checked = ", ".join(
            f"{table} by {found['run_id']} ({found['critical_failed']} critical failed)"
            if found
            else f"{table} unvalidated"
            for table, found in validation.items()
        )
        metrics = "  ".join(
            f"{key} {value:.4f}"
            for key, value in json.loads(row["metrics"]).items()
            if isinstance(value, float)
        )
        tracked = row.asDict().get("mlflow_run_id")  # absent from tables made before MLflow
        lines.append(
            f"{row['name']} v{row['model_version']}  {row['table_name']} v{row['table_version']}  "
            f"trained by {row['run_id']}  validation: {checked or 'none'}  {metrics}  "
            f"reused {uses.get((row['name'], row['model_version']), 0)}x"
            + (f"  mlflow run {tracked}" if tracked else "")
        )
    return lines


WORK_RECORD = "done.json"


def recorded_work(tables, folder: Path, identity: str, run_dir: Path) -> dict | None:
    """What :func:`record_work` saved in ``folder`` for work of this ``identity`` (a fingerprint
    of its config and input versions), carried into ``run_dir``; None where there is none, where
    a table it wrote has moved on since, or where a file it made is gone: then it is done again.

    The files it made under its own run's folder (plots, rules) are copied into ``run_dir`` and
    the record's paths point to the copies, so a run's folder holds its whole report."""
    import shutil

    path = folder / WORK_RECORD
    record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if record is None or record["identity"] != identity:
        return None
    for table, version in record["tables"].items():
        if not tables.exists(table) or tables.version(table) != version:
            return None
    old = str(Path(record["run_dir"])) + "/"
    moves: dict[str, str] = {}

    def carried(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: carried(v) for k, v in value.items()}
        if isinstance(value, list):
            return [carried(v) for v in value]
        if isinstance(value, str) and value.startswith(old):
            moves[value] = str(run_dir / value.removeprefix(old))
            return moves[value]
        return value

    metrics = carried(record["metrics"])
    if not all(Path(source).is_file() for source in moves):
        return None
    for source, target in moves.items():
        if source != target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return {**record, "metrics": metrics}


def record_work(folder: Path, identity: str, run_id: str, run_dir: Path, **record: Any) -> None:
    """Save what a piece of work produced (``tables``: name -> version written; ``metrics``;
    row counts), so a later run with the same ``identity`` can reuse it."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = {"identity": identity, "run_id": run_id, "run_dir": str(run_dir), **record}
    temporary = folder / f".{WORK_RECORD}.tmp"
    temporary.write_text(json.dumps(saved, indent=2, default=str), encoding="utf-8")
    temporary.replace(folder / WORK_RECORD)


def read_latest(config: Config, name: str) -> dict | None:
    """What the features stage last wrote for a set: gold table and version, model, manifest."""
    path = config.models_root / "features" / name / LATEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def latest_features(config: Config, name: str, tables: Tables) -> tuple[DataFrame, dict]:
    """A set's gold table at the version the features stage last wrote, and its manifest (feature
    names included)."""
    latest = read_latest(config, name)
    if latest is None:
        raise FileNotFoundError(f"feature set '{name}' has not been built yet; run the features stage first")
    return tables.read(latest["table"], version=latest["version"]), latest
