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
    "fingerprint string, metrics string"
)


def register_model(tables, entry: dict[str, Any]) -> int:
    """Append a trained model to ``ml.models`` as the next version of its name; returns it.

    ``entry`` holds the columns of :data:`REGISTRY_SCHEMA` but ``model_version`` and
    ``registered_at``; ``sources``, ``validation`` and ``metrics`` are dicts (stored as JSON).
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
            "model_version": version,
            "registered_at": datetime.now(UTC),
            **{key: json.dumps(entry[key], default=str) for key in ("sources", "validation", "metrics")},
        }
        frame = tables.spark.createDataFrame([tuple(row[c] for c in columns)], REGISTRY_SCHEMA)
        # The version is the name's transaction: of two registrations that read the same highest
        # version, one commits it and the other is told so (skipped), reads again and takes the next.
        try:
            if not tables.write(
                frame, MODELS_TABLE, txn=Txn(f"deepspark.models.{entry['name']}", version)
            ).skipped:
                return version
        except ConcurrentWriteError:
            continue
    raise TableError(
        f"{MODELS_TABLE}: model {entry['name']!r} lost {REGISTER_ATTEMPTS} races for a version to "
        "concurrent registrations; register it again"
    )


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
