"""Batch inference: score a Delta table with a registered model into a predictions table.

Stage predict. Inputs: ``ml.models`` (the latest version of each ``train.predict.<name>.model``)
and ``train.predict.<name>.input`` (default: the gold table of the model's dataset). Outputs:
``train.predict.<name>.output``, one row per input row: its key, its label and split when the
input has them, the predicted class and that class's probability (a regressor: the predicted
number), and the model name and version that scored it. The agreement with the label (accuracy,
or a regressor's RMSE) is measured on the held-out (test) rows where the input has splits, since
training rows flatter it.

The model file travels to the executors as a broadcast (a few hundred KB), so executors need no
shared filesystem. Scoring goes through pyspark's ``predict_batch_udf``: each Python worker
loads the model once (pyspark's model cache) and scores fixed-size numpy batches.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
from pyspark.ml.functions import predict_batch_udf
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, IntegerType, StructField, StructType

from deepspark.config import Config, PredictConfig
from deepspark.lineage import MANIFEST, MODELS_TABLE, read_manifest
from deepspark.run import Run, StageResult, skipped
from deepspark.tables import Tables
from deepspark.tensors import InputShape, tf_keras

_loaded: dict[str, object] = {}  # per Python worker: model digest -> loaded model
SCORED = StructType([StructField("prediction", IntegerType()), StructField("probability", FloatType())])
ESTIMATED = StructType([StructField("prediction", FloatType())])


def score(df: DataFrame, model_bytes, inputs: InputShape, key: str, batch_size: int = 512) -> DataFrame:
    """``df`` scored: key, label and split (when present), prediction and probability (a
    regressor: prediction). ``model_bytes`` is a broadcast of the saved model file."""
    keep = [key] + [c for c in ("label", "split") if c in df.columns]
    column = inputs.column
    flat = [int(np.prod(inputs.shape))]  # list columns arrive flat; inputs.batch reshapes
    shapes = [flat] if isinstance(df.schema[column].dataType, ArrayType) else None

    def make_predict_fn():
        model = _model(model_bytes.value)

        def classify(values: np.ndarray) -> dict[str, np.ndarray]:
            probabilities = np.asarray(model.predict_on_batch(inputs.batch(values)))
            if inputs.regression:
                return {"prediction": probabilities[:, 0].astype("float32")}
            return {
                "prediction": probabilities.argmax(axis=1).astype("int32"),
                "probability": probabilities.max(axis=1).astype("float32"),
            }

        return classify

    returns = ESTIMATED if inputs.regression else SCORED
    classify = predict_batch_udf(
        make_predict_fn, return_type=returns, batch_size=batch_size, input_tensor_shapes=shapes
    )
    scored = df.select(*keep, classify(column).alias("scored"))
    return scored.select(*keep, *[f"scored.{field}" for field in returns.fieldNames()])


def _model(data: bytes):
    digest = hashlib.sha256(data).hexdigest()
    if digest not in _loaded:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.h5")
            Path(path).write_bytes(data)
            _loaded[digest] = tf_keras().models.load_model(path, compile=False)
    return _loaded[digest]


def saved_inputs(folder: Path) -> InputShape:
    """The input the model in ``folder`` was trained on, from its manifest."""
    manifest = read_manifest(folder)
    if manifest is None:
        raise LookupError(f"{folder}: no {MANIFEST}; the model was not saved by the train stage")
    shape = manifest["inputs"]
    return InputShape(**{**shape, "shape": tuple(shape["shape"])})


def latest_model(tables: Tables, name: str) -> dict:
    """The registry row of the newest version of ``name``."""
    if not tables.exists(MODELS_TABLE):
        raise LookupError(f"no model registry yet ({MODELS_TABLE}); run the train stage first")
    rows = tables.read(MODELS_TABLE).filter(F.col("name") == name).orderBy(F.desc("model_version"))
    found = rows.limit(1).collect()
    if not found:
        raise LookupError(f"{MODELS_TABLE} has no model named {name!r}; run the train stage first")
    return found[0].asDict()


def scoring_input(config: Config, spec: PredictConfig) -> tuple[str, str]:
    """The table scored and its row id: as configured, else the model's dataset's gold table and
    key (config checks that spec.model is in train.models)."""
    model = config.train.models[spec.model]
    dataset = config.train.datasets.get(model.dataset)
    key = spec.key or (dataset.row_key if dataset else None)
    return spec.input or model.table, key


def predict(run: Run) -> StageResult:
    if not run.config.train.predict:
        return skipped("no train.predict in conf")
    result = StageResult()
    for name, spec in run.config.train.predict.items():
        key = f"train.predict.{name}"  # config checks that spec.model is in train.models
        entry = latest_model(run.tables, spec.model)
        inputs = saved_inputs(Path(entry["uri"]).parent)
        table, row_key = scoring_input(run.config, spec)
        source = run.tables.read(table)
        missing = [c for c in (row_key, inputs.column) if c not in source.columns]
        if missing:
            raise run.config.error(
                f"{key}.input",
                f"= {table!r}: expected columns {missing} (train.predict.{name}.key and the "
                f"model's input); the table has {source.columns}",
            )
        model_bytes = run.spark.sparkContext.broadcast(Path(entry["uri"]).read_bytes())
        scored = score(source, model_bytes, inputs, row_key).select(
            "*",
            F.lit(spec.model).alias("model"),
            F.lit(entry["model_version"]).alias("model_version"),
            F.current_timestamp().alias("scored_at"),
        )
        written = run.tables.write(scored, spec.output, mode="overwrite", evolve_schema=True)
        model_bytes.unpersist()
        result.tables[spec.output] = written.version
        result.rows_in += written.rows_written
        result.rows_out += written.rows_written
        agreement, measured_on = None, None
        if "label" in source.columns:
            scored_table = run.tables.read(spec.output, version=written.version)
            if "split" in source.columns:
                scored_table, measured_on = scored_table.filter(F.col("split") == "test"), "test split"
            else:
                measured_on = "every labelled row"
            if inputs.regression:
                error = F.pow(F.col("prediction") - F.col("label"), 2)
                agreement = scored_table.agg(F.sqrt(F.avg(error))).first()[0]
            else:
                agreement = scored_table.agg(
                    F.avg((F.col("label") == F.col("prediction")).cast("double"))
                ).first()[0]
        result.metrics[name] = {
            "model": spec.model,
            "model_version": entry["model_version"],
            "input": table,
            "output": spec.output,
            "rows": written.rows_written,
            "rmse" if inputs.regression else "accuracy": agreement,
            "measured_on": measured_on,
        }
    return result
