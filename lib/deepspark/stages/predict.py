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
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyspark.ml.functions import predict_batch_udf
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, IntegerType, StructField, StructType

from deepspark.config import Config, PredictConfig
from deepspark.lineage import MANIFEST, MODELS_TABLE, read_manifest
from deepspark.recipes import IMAGE_FILES, PROBLEM, new_examples
from deepspark.run import Run, StageResult, skipped
from deepspark.tables import TABLE_NAME, Tables
from deepspark.tensors import InputShape, tf_keras

_loaded: dict[str, object] = {}  # per Python worker: model digest -> loaded model
SCORED = StructType([StructField("prediction", IntegerType()), StructField("probability", FloatType())])
ESTIMATED = StructType([StructField("prediction", FloatType())])


def score(
    df: DataFrame, model_bytes, inputs: InputShape, key: str, batch_size: int = 512, carry: tuple = ()
) -> DataFrame:
    """``df`` scored: key, label and split (when present; and ``carry``), prediction and
    probability (a regressor: prediction). ``model_bytes`` is a broadcast of the saved model file."""
    keep = [key] + [c for c in dict.fromkeys(("label", "split", *carry)) if c in df.columns]
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


def against_label(scored: DataFrame, regression: bool, predicted: str = "prediction") -> tuple:
    """How ``predicted`` agrees with ``label`` on the rows that have both: the RMSE (a
    regressor) or the accuracy, and how many rows that is."""
    labelled = scored.filter(F.col("label").isNotNull() & F.col(predicted).isNotNull())
    if regression:
        measure = F.sqrt(F.avg(F.pow(F.col(predicted) - F.col("label"), 2)))
    else:
        measure = F.avg((F.col("label").cast("string") == F.col(predicted).cast("string")).cast("double"))
    found = labelled.agg(measure, F.count("*")).first()
    return found[0], found[1]


def latest_model(tables: Tables, name: str, version: int | None = None) -> dict:
    """The registry row of ``version`` of ``name``, or of its newest version."""
    if not tables.exists(MODELS_TABLE):
        raise LookupError(f"no model registry yet ({MODELS_TABLE}); run the train stage first")
    rows = tables.read(MODELS_TABLE).filter(F.col("name") == name)
    chosen = rows if version is None else rows.filter(F.col("model_version") == version)
    found = chosen.orderBy(F.desc("model_version")).limit(1).collect()
    if not found:
        known = sorted(r.model_version for r in rows.select("model_version").collect())
        raise LookupError(
            f"{MODELS_TABLE} has no model named {name!r}; run the train stage first"
            if not known
            else f"{MODELS_TABLE} has no version {version} of {name!r}; expected one of {known}"
        )
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
            agreement, _ = against_label(scored_table, inputs.regression)
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


# -- new rows: `deepspark predict --model NAME[:VERSION] --input TABLE|FILES` -------------------

ROW_FILES = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class Scored:
    """What scoring new rows wrote, as ``deepspark predict`` tells it."""

    model: str
    model_version: int
    input: str
    output: str
    output_version: int
    rows: int  # scored, and written with their prediction
    unscored: dict[str, int]  # written with no prediction: how many for each problem
    agreement: float | None  # with the label, where the new rows have one
    measure: str  # accuracy | rmse
    measured_on: int  # labelled rows scored
    foreign: dict[str, int] = field(default_factory=dict)  # labels that are not the model's classes
    classes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        said = [
            f"{self.model} v{self.model_version} scored {self.rows} row(s) of {self.input} "
            f"-> {self.output} v{self.output_version}"
        ]
        if self.unscored:
            top = "; ".join(f"{problem} ({n})" for problem, n in list(self.unscored.items())[:3])
            said.append(
                f"  not scored: {sum(self.unscored.values())} row(s), in {self.output} with a problem: {top}"
            )
        if self.foreign:
            labels = ", ".join(repr(label) for label in list(self.foreign)[:3])
            said.append(
                f"  no {self.measure} on {sum(self.foreign.values())} labelled row(s): their labels "
                f"({labels}) are not classes of the model ({', '.join(self.classes)})"
            )
        if self.agreement is not None:
            said.append(
                f"  {self.measure} against the label: {self.agreement:.4f} on {self.measured_on} row(s)"
            )
        return said


def parse_model(reference: str) -> tuple[str, int | None]:
    """``name`` or ``name:version``."""
    name, _, version = reference.partition(":")
    if not name or (version and not version.isdigit()):
        raise ValueError(f"--model {reference!r}: expected NAME or NAME:VERSION (e.g. digits_cnn:3)")
    return name, int(version) if version else None


def read_new_rows(run: Run, source: str, recipe: dict) -> DataFrame:
    """A table (layer.name) at its current version, or files: a file or a folder (searched
    recursively) of one kind, CSV with a header, JSON lines, parquet, text files or images. Rows
    from files carry ``_source_file``, as landed rows do; image files come as the dataset's
    binary column, and a text file as one row, its text in the dataset's text column."""
    if TABLE_NAME.match(source) and run.tables.exists(source):
        return run.tables.read(source)
    path = Path(source)
    if not path.exists():
        raise LookupError(
            f"--input {source!r}: no such table or path; expected a table (layer.name, see "
            "`deepspark tables`) or files (csv, json, parquet, txt or images)"
        )
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    suffixes = {f.suffix.lower() for f in files if not f.name.startswith((".", "_"))}
    reader = run.spark.read.option("recursiveFileLookup", "true")
    if suffixes and suffixes <= IMAGE_FILES:
        images = recipe.get("images") or {}
        if images.get("column") is None:
            raise ValueError(
                f"--input {source!r}: image files, but the model reads pixel columns "
                f"({images.get('columns')!r}); expected a table or CSV with them"
            )
        frame = reader.format("binaryFile").load(str(path))
        frame = frame.filter(F.lower(F.regexp_extract("path", r"(\.[^./]+)$", 1)).isin(*IMAGE_FILES))
        return frame.withColumnRenamed("content", images["column"]).withColumn("_source_file", F.col("path"))
    if suffixes == {".txt"}:  # one text each, as a text source lands them
        column = (recipe.get("text") or {}).get("column")
        if column is None:
            raise ValueError(f"--input {source!r}: text files, but the model does not read text")
        frame = reader.text(str(path), wholetext=True).withColumnRenamed("value", column)
    else:
        kinds = {ROW_FILES.get(s) for s in suffixes}
        if len(kinds) != 1 or None in kinds:
            raise ValueError(
                f"--input {source!r}: holds {sorted(suffixes) or 'no files'}; expected files of one kind: "
                f"{', '.join(ROW_FILES)}, .txt (a text each) or images ({', '.join(sorted(IMAGE_FILES))})"
            )
        (kind,) = kinds
        frame = reader.option("header", "true").format(kind).load(str(path))
    return frame.select("*", F.col("_metadata.file_path").alias("_source_file"))


def predict_new(run: Run, model: str, source: str, output: str | None = None) -> Scored:
    """Score new rows (:func:`read_new_rows`) with a registered model version, made examples by
    the recipe its manifest keeps (:func:`deepspark.recipes.new_examples`), into ``output``
    (default ``gold.<model>_scored``), overwritten: every row, its key and prediction (the class
    name too), or with no prediction and the problem that kept it from being scored."""
    name, version = parse_model(model)
    entry = latest_model(run.tables, name, version)
    folder = Path(entry["uri"]).parent
    inputs = saved_inputs(folder)
    manifest = read_manifest(folder)
    recipe = dict(manifest.get("data") or {})
    label = f"{name} v{entry['model_version']}"
    if not recipe:
        raise ValueError(
            f"--model {model!r}: {label} was trained on {entry['table_name']}, not on a "
            "train.datasets entry, so it keeps no recipe for new rows; score a table with its "
            f"input column {inputs.column!r} through train.predict"
        )
    if recipe.get("vocabulary_file"):
        recipe["vocabulary"] = json.loads((folder / recipe["vocabulary_file"]).read_text(encoding="utf-8"))
    where = f"{label}'s recipe (train.datasets: {recipe.get('table')})"
    examples, key = new_examples(read_new_rows(run, source, recipe), recipe, inputs.shape, where)
    examples = examples.persist()
    model_bytes = run.spark.sparkContext.broadcast(Path(entry["uri"]).read_bytes())
    try:
        output = output or f"gold.{name}_scored"
        written = run.tables.write(
            scored_rows(examples, model_bytes, entry, inputs, key, manifest.get("classes") or []),
            output,
            mode="overwrite",
            evolve_schema=True,
        )
    finally:
        examples.unpersist()
        model_bytes.unpersist()
    table = run.tables.read(output, version=written.version)
    problems = table.filter(F.col(PROBLEM).isNotNull()).groupBy(PROBLEM).count().orderBy(F.desc("count"))
    unscored = {row[PROBLEM]: row["count"] for row in problems.collect()}
    agreement, measured, foreign, names = None, 0, {}, []
    if "label" in table.columns:
        said = "predicted_class" if "predicted_class" in table.columns else "prediction"
        if not inputs.regression:  # a folder named "new" is no class: it measures nothing
            names = manifest.get("classes") or [str(i) for i in range(inputs.classes)]
            label = F.col("label").cast("string")
            counted = table.filter(label.isNotNull() & ~label.isin(names)).groupBy(label.alias("l")).count()
            foreign = {r["l"]: r["count"] for r in counted.orderBy(F.desc("count"), "l").collect()}
            table = table.filter(label.isin(names))
        agreement, measured = against_label(table, inputs.regression, said)
    return Scored(
        name,
        entry["model_version"],
        source,
        output,
        written.version,
        written.rows_written - sum(unscored.values()),
        unscored,
        agreement,
        "rmse" if inputs.regression else "accuracy",
        measured,
        foreign,
        names,
    )


def scored_rows(
    examples: DataFrame, model_bytes, entry: dict, inputs: InputShape, key: str, classes: list[str]
) -> DataFrame:
    """``examples`` scored where they have no problem, with the class name of each prediction;
    the others as they are, with no prediction. ``model_bytes``: a broadcast of the model file."""
    good = examples.filter(F.col(PROBLEM).isNull())
    carry = tuple(c for c in examples.columns if c not in (key, inputs.column, PROBLEM))
    scored = score(good, model_bytes, inputs, key, carry=carry).withColumn(
        PROBLEM, F.lit(None).cast("string")
    )
    kept = [c for c in scored.columns if c in examples.columns and c != PROBLEM]
    returns = ESTIMATED if inputs.regression else SCORED
    nothing = [F.lit(None).cast(field.dataType).alias(field.name) for field in returns.fields]
    unscored = examples.filter(F.col(PROBLEM).isNotNull()).select(*kept, *nothing, PROBLEM)
    rows = scored.unionByName(unscored)
    if classes and not inputs.regression:
        names = F.array(*[F.lit(str(c)) for c in classes])
        rows = rows.withColumn("predicted_class", F.element_at(names, F.col("prediction") + 1))
    return rows.select(
        "*",
        F.lit(entry["name"]).alias("model"),
        F.lit(entry["model_version"]).alias("model_version"),
        F.current_timestamp().alias("scored_at"),
    )
