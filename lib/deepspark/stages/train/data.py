"""Training data: gold tables for the networks, pinned snapshots, and Petastorm readers.

Each ``train.datasets.<name>`` becomes ``gold.<name>``, partitioned by ``split`` (train |
validation | test, from a hash of the row's key):

* images: the key, ``label``, ``pixels`` (height*width*channels bytes, row by row, channels
  last), ``height``, ``width``, ``channels``. Images come from an array column, pixel
  columns, encoded files (binaryFile) or Spark's image source, converted to grey or RGB and
  resized or padded by config; an image that cannot be read goes to ``quarantine.rows``.
* text: the key, ``label``, ``tokens`` (word ids in text order, 0 pads, 1 is a word outside the
  vocabulary);
* sequences: ``window_id`` (the series and the window's last step), ``label`` (its last row's),
  ``values`` (length x features floats, step by step, standardized); a row with a feature that
  is missing or not a number goes to ``quarantine.rows``.

A training run reads a table *pinned to a Delta version* through that snapshot's own file list
(:class:`PinnedTable`), never the folder: a folder also holds files that the version has
logically removed. Each Horovod rank reads whole files (row groups) of its shard with Petastorm;
readers use the ``dummy`` or ``process`` pool, since the thread pool can yield no rows without an
error, and every one-pass read checks its row count against the parquet footers.

``label`` is a class id (int), or a float for a regression dataset (``task: regression``).
"""

from __future__ import annotations

import fnmatch
import io
import json
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.errors import PySparkException
from pyspark.ml.feature import CountVectorizer, RegexTokenizer
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    IntegralType,
    NumericType,
    StringType,
    StructType,
)

from deepspark.bronze import METADATA, PROBLEMS
from deepspark.config import (
    SURROGATE_KEY,
    WINDOW_KEY,
    Config,
    DatasetConfig,
    ImageInput,
    LabelsTable,
    SequenceInput,
    gold_table,
)
from deepspark.errors import describe
from deepspark.lineage import fingerprint
from deepspark.quarantine import KEYS as QUARANTINE_KEYS
from deepspark.quarantine import QUARANTINE, to_quarantine
from deepspark.tables import TableError, Tables
from deepspark.tensors import as_rows

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
PAD, UNKNOWN = 0, 1  # token ids below the vocabulary's
TOKEN_PATTERN = "[^\\p{L}\\p{N}']+"  # what separates words (lower-cased), as Spark's RegexTokenizer takes it
FOLDER = "_folder"  # the name of a landed file's folder: the class of images in class folders
FILE = "_file"  # a landed file's own name: what a labels table names it by


class TrainingDataError(RuntimeError):
    """Training data that cannot be read as asked; the message names the table and version."""


# -- preparing the gold tables (pure transforms) --------------------------------------------


def assign_split(key: F.Column, shares: dict[str, float], seed: int) -> F.Column:
    """``train`` / ``validation`` / ``test`` from a hash of the key: stable across reruns and
    appends, independent of partitioning."""
    bucket = F.pmod(F.xxhash64(key, F.lit(seed)), F.lit(10_000)) / F.lit(10_000.0)
    train_end = shares["train"]
    validation_end = train_end + shares["validation"]
    return F.when(bucket < train_end, "train").when(bucket < validation_end, "validation").otherwise("test")


def with_key_and_label(
    source: DataFrame, spec: DatasetConfig, where: str, labels: DataFrame | None = None
) -> DataFrame:
    """The input with its key as a string (a surrogate hash of the row's values when the
    dataset names none), ``_folder`` and ``_file`` for landed files, the ``labels`` table's
    columns (:func:`join_labels`), and ``label`` from the label expression."""
    content = [c for c in source.columns if c not in METADATA and c not in PROBLEMS]
    keyed = spec.kind != "sequences"  # sequences are keyed by series and step, once windowed
    if keyed and spec.key is None:
        values = F.to_json(F.struct(*[F.col(f"`{c}`") for c in content]))
        source = source.withColumn(SURROGATE_KEY, F.sha2(values, 256))
    elif keyed and spec.key not in source.columns:
        raise TrainingDataError(f"{where}.key = {spec.key!r}: no such column; the input has {content}")
    if "_source_file" in source.columns:
        source = source.withColumns(
            {
                FOLDER: F.url_decode(F.regexp_extract("_source_file", r"([^/]+)/[^/]+$", 1)),
                FILE: F.url_decode(F.regexp_extract("_source_file", r"([^/]+)$", 1)),
            }
        )
    if labels is not None:  # after the key: a surrogate hashes the example, not its label
        source = join_labels(source, labels, spec.labels, f"{where}.labels")
    labelled = with_expression(source, "label", spec.label, f"{where}.label")
    return labelled.withColumn(spec.row_key, F.col(spec.row_key).cast("string")) if keyed else labelled


def with_expression(frame: DataFrame, column: str, sql: str, key: str) -> DataFrame:
    """``frame`` with ``column`` = the SQL expression ``sql``, analysed here (no job runs), so an
    expression that does not parse or resolve stops with one line naming ``key``."""
    try:
        added = frame.withColumn(column, F.expr(sql))
        _ = added.schema
    except PySparkException as error:
        raise TrainingDataError(f"{key} = {sql!r}: {describe(error)}") from error
    return added


def join_labels(frame: DataFrame, labels: DataFrame, spec: LabelsTable, where: str) -> DataFrame:
    """``frame`` with the columns of the labels table (its own, not bronze's metadata) of the row
    that matches each example on ``spec.on`` (compared as text); an example with no such row
    gets nulls, so it has no label and is left out. A key with two label rows stops here."""
    missing = [c for c in spec.on if c not in frame.columns]
    if missing:
        raise TrainingDataError(f"{where}.on: no input column(s) {missing}; the input has {frame.columns}")
    missing = [c for c in spec.on.values() if c not in labels.columns]
    if missing:
        raise TrainingDataError(
            f"{where}.on: no column(s) {missing} in {spec.table}; it has {labels.columns}"
        )
    carried = [
        c for c in labels.columns if c not in spec.on.values() and c not in METADATA and c not in PROBLEMS
    ]
    clash = [c for c in carried if c in frame.columns]
    if clash:
        raise TrainingDataError(
            f"{where}.table = {spec.table!r}: column(s) {clash} are in the input too; expected "
            "labels columns with names of their own (rename them in the labels table's clean step)"
        )
    sides = {f"_on{i}": F.col(f"`{c}`").cast("string") for i, c in enumerate(spec.on.values())}
    keyed = labels.select(*[column.alias(name) for name, column in sides.items()], *carried)
    repeated = keyed.groupBy(*sides).count().filter(F.col("count") > 1).limit(3).collect()
    if repeated:
        shown = ", ".join("|".join(str(v) for v in row[:-1]) for row in repeated)
        raise TrainingDataError(
            f"{where}.table = {spec.table!r}: more than one row for {shown}; expected one label row "
            f"per example (by {list(spec.on.values())})"
        )
    matches = [F.col(f"`{c}`").cast("string") == F.col(name) for c, name in zip(spec.on, sides, strict=True)]
    return frame.join(keyed, matches, "left").drop(*sides)


def natural_order(names: list[str]) -> list[str]:
    """pixel2 before pixel10."""
    return sorted(names, key=lambda n: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", n)])


IMAGE = "struct<pixels binary, height int, width int, problem string>"


def image_source(frame: DataFrame, spec: ImageInput, where: str) -> tuple[str, list[F.Column]]:
    """How the images of ``frame`` reach the converter: (form, its argument columns)."""
    if spec.columns is not None:
        names = natural_order([c for c in frame.columns if fnmatch.fnmatchcase(c, spec.columns)])
        if not names:
            raise TrainingDataError(
                f"{where}.images.columns = {spec.columns!r}: matches no column of {frame.columns}"
            )
        return "levels", [F.array(*[F.col(f"`{c}`").try_cast("double") for c in names])]
    if spec.column not in frame.columns:
        raise TrainingDataError(
            f"{where}.images.column = {spec.column!r}: no such column; the input has {frame.columns}"
        )
    kind = frame.schema[spec.column].dataType
    column = F.col(f"`{spec.column}`")
    if isinstance(kind, ArrayType):
        return "levels", [column.try_cast("array<double>")]
    if isinstance(kind, BinaryType):
        return "encoded", [column]
    if isinstance(kind, StructType) and {"data", "height", "width", "nChannels"} <= set(kind.fieldNames()):
        return "spark_image", [column.data, column.height, column.width, column.nChannels]
    raise TrainingDataError(
        f"{where}.images.column = {spec.column!r} is {kind.simpleString()}; expected an array of levels, "
        "a binary column of image files, or Spark's image struct"
    )


def to_training_images(frame: DataFrame, spec: ImageInput, where: str) -> DataFrame:
    """``frame`` with ``_image``: the image as the network reads it (pixels, height, width) or
    the problem that kept it from being read."""
    form, arguments = image_source(frame, spec, where)
    converter = ImageConverter(form, spec)
    if form == "spark_image":

        def convert(data: pd.Series, height: pd.Series, width: pd.Series, depth: pd.Series) -> pd.DataFrame:
            return converter(data, height, width, depth)

    else:

        def convert(values: pd.Series) -> pd.DataFrame:
            return converter(values)

    return frame.withColumn("_image", F.pandas_udf(convert, IMAGE)(*arguments))


class ImageConverter:
    """A pandas UDF body: images of one form -> uint8 pixels of the configured channels and
    size (Pillow resizes, pads and converts), or a problem per row that cannot be."""

    def __init__(self, form: str, spec: ImageInput):
        self.form, self.spec = form, spec

    def __call__(self, *columns: pd.Series) -> pd.DataFrame:
        rows = []
        for values in zip(*columns, strict=True):
            try:
                image = self.fit(self.read(*values))
                rows.append((image.tobytes(), image.shape[0], image.shape[1], None))
            except (ValueError, OSError) as error:
                rows.append((None, None, None, str(error)[:300]))
        return pd.DataFrame(rows, columns=["pixels", "height", "width", "problem"])

    def read(self, *values) -> np.ndarray:
        """One image as a (height, width, channels) uint8 array."""
        if self.form == "levels":
            return levels_image(values[0], self.spec.width, self.spec.depth)
        if self.form == "encoded":
            return encoded_image(values[0])
        data, height, width, channels = values
        if data is None or height is None or height < 0:
            raise ValueError("not a decodable image (Spark's image source could not read it)")
        pixels = np.frombuffer(data, dtype=np.uint8).reshape(height, width, channels)
        return pixels[..., [2, 1, 0]] if channels >= 3 else pixels  # BGR(A) -> RGB

    def fit(self, pixels: np.ndarray) -> np.ndarray:
        return fit_image(pixels, self.spec.channels, self.spec.size, self.spec.fit)


def levels_image(values, width: int | None, depth: int) -> np.ndarray:
    if values is None or len(values) == 0:
        raise ValueError("no pixel values")
    levels = np.asarray(values, dtype=np.float64)
    if np.isnan(levels).any():
        raise ValueError(f"{int(np.isnan(levels).sum())} pixel value(s) missing or not numbers")
    if levels.min() < 0 or levels.max() > 255:
        raise ValueError(f"pixel values {levels.min():g}..{levels.max():g}; expected levels 0..255")
    pixels = len(levels) // depth
    side = width or int(round(pixels**0.5))
    if len(levels) % depth or pixels % side or (width is None and side * side != pixels):
        shape = f"rows of {width}" if width else "a square"
        raise ValueError(f"{len(levels)} values are not {shape} of {depth}-level pixels; set images.width")
    return np.rint(levels).astype(np.uint8).reshape(pixels // side, side, depth)


def encoded_image(data: bytes | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError("an empty file, not an image")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            converted = image.convert("L" if image.mode in ("1", "L", "I;16", "I", "F") else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"not a decodable image: {error}") from error
    pixels = np.asarray(converted, dtype=np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def fit_image(pixels: np.ndarray, channels: int, size: tuple[int, int] | None, fit: str) -> np.ndarray:
    """``pixels`` (h, w, c) as (size..., channels): grey <-> RGB converted, stretched or padded."""
    height, width = size or pixels.shape[:2]
    if pixels.shape == (height, width, channels):
        return pixels
    from PIL import Image

    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels[..., :3])
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (width, height):
        if fit == "stretch":
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        else:
            scale = min(width / image.width, height / image.height)
            inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            canvas = Image.new(image.mode, (width, height))
            canvas.paste(
                image.resize(inner, Image.Resampling.BILINEAR),
                ((width - inner[0]) // 2, (height - inner[1]) // 2),
            )
            image = canvas
    return np.asarray(image, dtype=np.uint8).reshape(height, width, channels)


def to_windows(
    labelled: DataFrame, spec: SequenceInput, shares: dict[str, float], seed: int
) -> tuple[DataFrame, dict[str, dict[str, float]]]:
    """``labelled`` (with ``_order``, the value of ``spec.order``) as windows: each window of
    ``spec.length`` consecutive rows of a series (every ``stride``-th), as
    ``values`` (standardized features, step by step), with the label of its last row; and each
    feature's mean and deviation, which new rows need to be scored alike."""
    stats = labelled.agg(
        *[F.avg(F.col(f)).alias(f"m{i}") for i, f in enumerate(spec.features)],
        *[F.stddev_pop(F.col(f)).alias(f"s{i}") for i, f in enumerate(spec.features)],
    ).first()
    scaling = {
        f: {"mean": stats[f"m{i}"] or 0.0, "std": stats[f"s{i}"] or 1.0} for i, f in enumerate(spec.features)
    }
    scaled = [
        ((F.col(f) - F.lit(scaling[f]["mean"])) / F.lit(scaling[f]["std"])).cast("float")
        for f in spec.features
    ]
    series = [F.col(f"`{c}`") for c in spec.series]
    ordered = Window.partitionBy(*series).orderBy("_order")
    steps = labelled.select(
        *series,
        "_order",
        "label",
        F.array(*scaled).alias("_step"),
        F.row_number().over(ordered).alias("_n"),
    )
    window = F.collect_list("_step").over(ordered.rowsBetween(-(spec.length - 1), 0))
    steps = steps.withColumn("_steps", window)
    ends = steps.filter(
        (F.col("_n") >= spec.length)
        & ((F.col("_n") - spec.length) % spec.stride == 0)
        & F.col("label").isNotNull()
    )
    whole = F.concat_ws("|", *[c.cast("string") for c in series], F.col("_order").cast("string"))
    split_by = F.concat_ws("|", *[c.cast("string") for c in series]) if series else whole
    windows = ends.select(
        whole.alias(WINDOW_KEY),
        "label",
        F.flatten("_steps").alias("values"),
        assign_split(split_by, shares, seed).alias("split"),
    )
    return windows, scaling


def tokenize(df: DataFrame, text: str) -> DataFrame:
    """Lower-case words in order, as the vocabulary and the sequences see them."""
    tokenizer = RegexTokenizer(inputCol=text, outputCol="_words", pattern=TOKEN_PATTERN)
    return tokenizer.transform(df.withColumn(text, F.coalesce(F.col(text), F.lit(""))))


def learn_vocabulary(train_words: DataFrame, size: int) -> list[str]:
    """The ``size`` words found in most training texts (ids 2.. in this order)."""
    model = CountVectorizer(inputCol="_words", outputCol="_counts", vocabSize=size, minDF=1.0)
    return list(model.fit(train_words).vocabulary)


def to_sequences(words: DataFrame, spec: DatasetConfig, vocabulary: list[str]) -> DataFrame:
    """Each text's words as ids in order, cut or padded to ``max_len``."""
    max_len = spec.text.max_len
    vocab = F.array(*[F.lit(word) for word in vocabulary])
    ids = F.transform(
        F.slice("_words", 1, max_len),
        lambda w: (
            F.when(F.array_position(vocab, w) > 0, F.array_position(vocab, w) + 1)
            .otherwise(F.lit(UNKNOWN))
            .cast("int")
        ),
    )
    padding = F.array_repeat(F.lit(PAD), F.greatest(F.lit(0), F.lit(max_len) - F.size(ids)))
    return words.select(
        spec.row_key,
        "label",  # a class id or a number (prepare_labels)
        F.concat(ids, padding).alias("tokens"),
        "split",
    )


def labelled_words(
    source: DataFrame,
    spec: DatasetConfig,
    shares: dict[str, float],
    seed: int,
    where: str = "train.datasets",
    labels: DataFrame | None = None,
) -> DataFrame:
    """Rows with a label (rows whose label expression gives null are left out), split, tokenized.
    The label is the expression's value as it is: :func:`prepare_labels` makes it a class id
    or a number."""
    if spec.text.column not in source.columns:
        raise TrainingDataError(
            f"{where}.text.column = {spec.text.column!r}: no such column; the input has {source.columns}"
        )
    labelled = with_key_and_label(source, spec, where, labels).filter(F.col("label").isNotNull())
    labelled = labelled.withColumn("split", assign_split(F.col(spec.row_key), shares, seed))
    return tokenize(labelled, spec.text.column)


MAX_CLASSES = 1000


def prepare_labels(
    labelled: DataFrame, spec: DatasetConfig, where: str
) -> tuple[DataFrame, list[str] | None]:
    """``label`` as the network learns it: a class id (:func:`index_labels`), or for a
    regression dataset a float (:func:`numeric_labels`); with the class names, if any."""
    where = f"{where}.label = {spec.label!r} on {spec.input}"
    if spec.task == "classification":
        return index_labels(labelled, where)
    numbers = numeric_labels(labelled, where)
    # NaN became null: no example (a sequence's row stays a step; to_windows skips its window).
    return (numbers if spec.kind == "sequences" else numbers.filter(F.col("label").isNotNull())), None


def numeric_labels(labelled: DataFrame, where: str) -> DataFrame:
    """A regressor's label as a float; NaN counts as missing (null), as in clean."""
    kind = labelled.schema["label"].dataType
    if not isinstance(kind, NumericType):
        raise TrainingDataError(
            f"{where}: the label is {kind.simpleString()}; a regression dataset expected a number "
            "(cast text in the label expression: TRY_CAST(<column> AS DOUBLE))"
        )
    value = F.col("label").cast("float")
    return labelled.withColumn("label", F.when(F.isnan(value), None).otherwise(value))


def index_labels(labelled: DataFrame, where: str) -> tuple[DataFrame, list[str] | None]:
    """Class ids 0..n-1 in ``label``, and the class names when they were not ids already.

    A string label (``label: source``, or a CASE giving 'bad' | 'mixed' | 'good') becomes the
    position of its value among the sorted distinct values, whose names are returned; an integer
    label must already be 0..n-1 (names: None, the ids are the names)."""
    kind = labelled.schema["label"].dataType
    if isinstance(kind, StringType | BooleanType):
        named = labelled.select(F.col("label").cast("string")).where(F.col("label").isNotNull())
        values = named.distinct().limit(MAX_CLASSES + 1).collect()
        names = sorted(row[0] for row in values)
        if len(names) > MAX_CLASSES:
            raise TrainingDataError(
                f"{where}: the label has more than {MAX_CLASSES} distinct values; expected classes"
            )
        classes = F.array(*[F.lit(name) for name in names])
        index = (F.array_position(classes, F.col("label").cast("string")) - 1).cast("int")
        return labelled.withColumn("label", index), names
    if not isinstance(kind, IntegralType):
        raise TrainingDataError(
            f"{where}: the label is {kind.simpleString()}; expected class ids 0, 1, ... or a string class"
        )
    lowest = labelled.agg(F.min("label")).first()[0]
    if lowest is not None and lowest < 0:
        raise TrainingDataError(
            f"{where}: the label holds {lowest}; expected class ids 0, 1, ... or a string class"
        )
    return labelled.withColumn("label", F.col("label").cast("int")), None


# -- the train stage's data step ------------------------------------------------------------


@dataclass(frozen=True)
class PreparedTable:
    table: str
    version: int
    rows: int
    rewritten: bool
    source: dict[str, int]  # the input table and the version it was read at
    vocabulary: list[str] | None = None  # sequences: word of id i + 2
    settings: dict | None = None  # how it was prepared: its train.datasets.<name>
    classes: list[str] | None = None  # the name of each class id, where the label was not ids
    quarantined: int = 0  # images that could not be read, sent to quarantine.rows
    scaling: dict | None = None  # sequences: each feature's mean and std, as standardized

    def recipe(self) -> dict:
        """What a model trained on this table needs to score new rows: the settings (label
        expression, text column, max_len...), the tokenizer and the vocabulary."""
        recipe = {
            "table": self.table,
            "version": self.version,
            "source": self.source,
            **(self.settings or {}),
            "class_names": self.classes,
        }
        if self.scaling is not None:
            recipe["scaling"] = self.scaling  # value -> (value - mean) / std
        if self.vocabulary is not None:
            recipe |= {
                "tokenizer": TOKEN_PATTERN,
                "lower_case": True,
                "pad_id": PAD,
                "unknown_id": UNKNOWN,
                "vocabulary": self.vocabulary,  # word of id i + 2
            }
        return recipe


def prepare_dataset(tables: Tables, settings: Config, name: str, run_id: str = "") -> PreparedTable:
    """``gold.<name>`` from ``train.datasets.<name>``, unless it is current already."""
    spec = settings.train.datasets[name]
    where = f"train.datasets.{name}"
    persisted: list[DataFrame] = []

    def build(versions: dict[str, int]) -> tuple[DataFrame, dict]:
        raw = tables.read(spec.input, version=versions[spec.input])
        labels = tables.read(spec.labels.table, version=versions[spec.labels.table]) if spec.labels else None
        if spec.kind == "text":
            return text_frame(raw, spec, settings, where, labels)
        if spec.kind == "sequences":
            return sequence_frame(tables, raw, spec, settings, where, name, run_id, labels)
        labelled = with_key_and_label(raw, spec, where, labels).filter(F.col("label").isNotNull())
        # Read five times (quarantine count and rows, sizes, classes, the write): converted once.
        converted = to_training_images(labelled, spec.images, where).persist()
        persisted.append(converted)
        return image_frame(tables, converted, raw.columns, spec, settings, where, name, run_id)

    try:
        return _prepare(tables, settings, gold_table(name), spec, build, where)
    finally:
        for frame in persisted:
            frame.unpersist()


def text_frame(
    raw: DataFrame, spec: DatasetConfig, settings: Config, where: str, labels: DataFrame | None = None
) -> tuple[DataFrame, dict]:
    words = labelled_words(raw, spec, settings.train.splits, settings.run.seed, where, labels)
    words, classes = prepare_labels(words, spec, where)
    vocabulary = learn_vocabulary(words.filter(F.col("split") == "train"), spec.text.vocab_size)
    return to_sequences(words, spec, vocabulary), {"vocabulary": vocabulary, "classes": classes}


def image_frame(
    tables: Tables,
    converted: DataFrame,
    columns: list[str],
    spec: DatasetConfig,
    settings: Config,
    where: str,
    name: str,
    run_id: str,
) -> tuple[DataFrame, dict]:
    """Labelled images (``converted`` by :func:`to_training_images` from an input with
    ``columns``) as the network reads them; those that cannot be read (or that ingest already
    found malformed) go to quarantine.rows with the reason."""
    key = spec.row_key
    issue = F.col("_ingest_issue") if "_ingest_issue" in columns else F.lit(None).cast("string")
    readable = issue.isNull() & F.col("_image.pixels").isNotNull()
    rejected = converted.filter(~readable)
    problem = F.concat(F.lit(f"{where}.images: "), F.col("_image.problem"))
    quarantined = quarantine(tables, rejected, columns, key, "unreadable_image", problem, name, run_id)
    good = converted.filter(readable)
    if spec.images.size is None:
        sizes = good.select("_image.height", "_image.width").distinct().limit(6).collect()
        if len(sizes) > 1:
            shown = ", ".join(f"{r.height}x{r.width}" for r in sizes[:5])
            raise settings.error(
                f"{where}.images.size",
                f"= null: the images come in several sizes ({shown}, ...); expected [height, width] "
                "for the network to read (each image is resized or padded to it)",
            )
    good, classes = prepare_labels(good, spec, where)
    frame = good.select(
        key,
        "label",
        F.col("_image.pixels").alias("pixels"),
        F.col("_image.height").alias("height"),
        F.col("_image.width").alias("width"),
        F.lit(spec.images.channels).alias("channels"),
        assign_split(F.col(key), settings.train.splits, settings.run.seed).alias("split"),
    )
    return frame, {"classes": classes, "quarantined": quarantined}


def quarantine(
    tables: Tables,
    rejected: DataFrame,
    columns: list[str],
    key: str,
    reason: str,
    problem: F.Column,
    name: str,
    run_id: str,
) -> int:
    """``rejected`` rows into quarantine.rows (stage train): ingest's own issue and rule where the
    row had one, else ``reason`` and ``problem``; the record is the key and the source file."""
    count = rejected.count()
    if not count:
        return 0

    def carried(column: str, otherwise: F.Column) -> F.Column:
        return F.col(column) if column in columns else otherwise

    kept = [key] + [c for c in ("_source_file",) if c in columns]
    marked = rejected.select(
        *kept,
        F.lit("train").alias("_stage"),
        F.coalesce(carried("_ingest_issue", F.lit(None).cast("string")), F.lit(reason)).alias("_reason"),
        F.coalesce(carried("_ingest_rule", F.lit(None).cast("string")), problem).alias("_rule"),
        carried("_batch_id", F.lit(None).cast("string")).alias("_batch_id"),
        carried("_row_hash", F.sha2(F.col(key).cast("string"), 256)).alias("_row_hash"),
    )
    tables.merge(to_quarantine(marked, kept, name, run_id), QUARANTINE, QUARANTINE_KEYS)
    return count


def sequence_frame(
    tables: Tables,
    raw: DataFrame,
    spec: DatasetConfig,
    settings: Config,
    where: str,
    name: str,
    run_id: str,
    labels: DataFrame | None = None,
) -> tuple[DataFrame, dict]:
    """Labelled rows as windows; a row with a feature that is missing or not a number goes to
    quarantine (its series' windows skip it)."""
    sequences = spec.sequences
    missing = [c for c in [*sequences.features, *sequences.series] if c not in raw.columns]
    if missing:
        raise TrainingDataError(f"{where}.sequences: no column(s) {missing}; the input has {raw.columns}")
    # Rows with no label stay steps of their series: only no window ends on them (a forecast's
    # label, the next step's value, is null on each series' last row).
    labelled = with_key_and_label(raw, spec, where, labels)
    labelled = with_expression(labelled, "_order", sequences.order, f"{where}.sequences.order")
    numbers = {f"_f{i}": F.col(f"`{f}`").try_cast("double") for i, f in enumerate(sequences.features)}
    labelled = labelled.withColumns(numbers)
    broken = [F.when(F.col(f"_f{i}").isNull(), F.lit(f)) for i, f in enumerate(sequences.features)]
    labelled = labelled.withColumn("_broken", F.concat_ws(", ", *broken))
    step = F.concat_ws(
        "|", *[F.col(f"`{c}`").cast("string") for c in sequences.series], F.col("_order").cast("string")
    )
    rejected = labelled.filter(F.col("_broken") != "").withColumn(WINDOW_KEY, step)
    problem = F.concat(F.lit(f"{where}.sequences.features: missing or not a number: "), F.col("_broken"))
    quarantined = quarantine(
        tables, rejected, raw.columns, WINDOW_KEY, "missing_value", problem, name, run_id
    )
    good = labelled.filter(F.col("_broken") == "")
    good = good.drop(*sequences.features).withColumnsRenamed(
        {f"_f{i}": f for i, f in enumerate(sequences.features)}
    )
    good, classes = prepare_labels(good, spec, where)
    windows, scaling = to_windows(good, sequences, settings.train.splits, settings.run.seed)
    return windows, {"classes": classes, "quarantined": quarantined, "scaling": scaling}


def bad_cast(error: Exception, where: str) -> TrainingDataError | None:
    """A CAST in the label or order expression that met text that is not a number (ANSI SQL
    stops the job there) as one line naming the keys, and the fix; None for any other error."""
    text = describe(error) if isinstance(error, PySparkException) else str(error)
    if "CAST_INVALID_INPUT" not in text:
        return None
    found = re.search(r"The value '([^']*)' of the type \S+ cannot be cast to \S+", text)
    value = found.group(0).replace('"', "") if found else "a value could not be cast"
    return TrainingDataError(
        f"{where}: {value} in the label or sequences.order expression; expected TRY_CAST(<column> "
        "AS <type>), which makes such a value null (a row with no label is left out)"
    )


def _prepare(
    tables: Tables, settings: Config, name: str, spec: DatasetConfig, build, where: str
) -> PreparedTable:
    """Write ``name`` from ``build(versions)`` (the input's and the labels table's) unless its
    rows already came from the same versions and settings: a rerun keeps the version, so a failed
    training resumes on the same data. Errors name the dataset's keys, ``where``."""
    config = settings.train
    source = {spec.input: tables.version(spec.input)}
    if spec.labels is not None:  # a new labels version is new data, as a new input version is
        if not tables.exists(spec.labels.table):
            raise TrainingDataError(
                f"{where}.labels.table = {spec.labels.table!r}: no such table; ingest or clean it first"
            )
        source[spec.labels.table] = tables.version(spec.labels.table)
    key = fingerprint(
        spec.model_dump(mode="json"), source, config.splits, settings.run.seed, config.files_per_split
    )
    marker = settings.models_root / "training_data" / f"{name}.json"
    recorded = json.loads(marker.read_text()) if marker.is_file() else None
    if (
        recorded
        and recorded["key"] == key
        and tables.exists(name)
        and tables.version(name) == recorded["version"]
    ):
        return PreparedTable(
            name,
            recorded["version"],
            recorded["rows"],
            False,
            source,
            recorded["vocabulary"],
            spec.model_dump(mode="json"),
            recorded.get("classes"),
            scaling=recorded.get("scaling"),
        )
    try:
        frame, extras = build(source)
        written = tables.write(
            frame.repartition(config.files_per_split),
            name,
            mode="overwrite",
            partition_by=["split"],
            evolve_schema=True,
        )
    except (TableError, PySparkException) as error:
        cast = bad_cast(error, where)
        if cast is None:
            raise
        raise cast from error
    marker.parent.mkdir(parents=True, exist_ok=True)
    vocabulary, classes = extras.get("vocabulary"), extras.get("classes")
    record = {
        "key": key,
        "version": written.version,
        "rows": written.rows_written,
        "vocabulary": vocabulary,
        "classes": classes,
        "scaling": extras.get("scaling"),
    }
    marker.write_text(json.dumps({**record, "source": source}, indent=2))
    return PreparedTable(
        name,
        written.version,
        written.rows_written,
        True,
        source,
        vocabulary,
        spec.model_dump(mode="json"),
        classes,
        extras.get("quarantined", 0),
        extras.get("scaling"),
    )


# -- pinned snapshots and Petastorm readers -------------------------------------------------


@dataclass(frozen=True)
class PinnedTable:
    """A table at one Delta version: its files per split with their row and row-group counts."""

    table: str
    version: int
    files: dict[str, list[str]]
    rows: dict[str, int]
    row_groups: dict[str, int]

    def require_shards(self, split: str, shards: int) -> None:
        """Petastorm shards by row group: each rank needs at least one."""
        if self.rows.get(split, 0) == 0:
            raise TrainingDataError(f"{self.table} version {self.version} has no '{split}' rows")
        if self.row_groups[split] < shards:
            raise TrainingDataError(
                f"{self.table} version {self.version}: the '{split}' split has "
                f"{self.row_groups[split]} row group(s) for {shards} ranks; each rank reads whole "
                "row groups, so raise train.files_per_split or lower train.num_proc"
            )


def pin_table(tables: Tables, name: str, version: int | None = None) -> PinnedTable:
    """The snapshot of ``name`` at ``version`` (default latest), split by its partition folders."""
    import pyarrow.parquet as pq
    from pyarrow import fs

    version = tables.version(name) if version is None else version
    files: dict[str, list[str]] = {split: [] for split in SPLITS}
    rows = dict.fromkeys(SPLITS, 0)
    row_groups = dict.fromkeys(SPLITS, 0)
    for uri in tables.files(name, version):
        split = next((s for s in SPLITS if f"/split={s}/" in uri), None)
        if split is None:
            raise TrainingDataError(f"{name} version {version}: {uri} is not under a split=<name>/ folder")
        filesystem, path = fs.FileSystem.from_uri(uri)
        metadata = pq.read_metadata(path, filesystem=filesystem)
        files[split].append(uri)
        rows[split] += metadata.num_rows
        row_groups[split] += metadata.num_row_groups
    return PinnedTable(name, version, files, rows, row_groups)


def stream_batches(
    files: list[str],
    columns: list[str],
    batch_size: int,
    *,
    rank: int = 0,
    size: int = 1,
    seed: int = 0,
    shuffle_buffer: int = 2048,
    pool: str = "dummy",
) -> Iterator[dict[str, np.ndarray]]:
    """Endless shuffled batches of this rank's shard (row groups ``i`` with ``i % size == rank``).

    Endless on purpose: every rank takes the same number of batches per epoch (the caller's
    ``steps_per_epoch``) however its shard's size differs, so no rank waits forever in an
    allreduce. Rows are shuffled across row groups through a buffer of ``shuffle_buffer`` rows.
    """
    from petastorm import make_batch_reader

    _quiet_petastorm()
    rng = np.random.default_rng(seed + 7919 * rank)
    shard = dict(cur_shard=rank, shard_count=size) if size > 1 else {}
    with make_batch_reader(
        files,
        schema_fields=columns,
        reader_pool_type=pool,
        workers_count=1 if pool == "process" else 10,
        num_epochs=None,
        shuffle_row_groups=True,
        seed=seed,
        **shard,
    ) as reader:
        buffered: dict[str, list[np.ndarray]] = {c: [] for c in columns}
        held = 0
        for chunk in reader:
            for column in columns:
                buffered[column].append(as_rows(getattr(chunk, column)))
            held += len(getattr(chunk, columns[0]))
            if held < max(shuffle_buffer, batch_size):
                continue
            merged = {c: np.concatenate(parts) for c, parts in buffered.items()}
            order = rng.permutation(held)
            whole = held - held % batch_size
            for start in range(0, whole, batch_size):
                picked = order[start : start + batch_size]
                yield {c: merged[c][picked] for c in columns}
            rest = order[whole:]
            buffered = {c: [merged[c][rest]] for c in columns}
            held = len(rest)


def read_split(
    pinned: PinnedTable, split: str, columns: list[str], pool: str = "dummy"
) -> dict[str, np.ndarray]:
    """One pass over a split of a pinned table, all rows, checked against the footers' count."""
    where = f"{pinned.table} version {pinned.version} '{split}'"
    return read_rows(pinned.files[split], columns, pinned.rows[split], where, pool)


def read_rows(
    files: list[str], columns: list[str], expected_rows: int, where: str, pool: str = "dummy"
) -> dict[str, np.ndarray]:
    """One pass over ``files``, all rows; fewer or more than ``expected_rows`` (the parquet
    footers' count) is an error naming ``where``, since Petastorm can drop rows silently."""
    from petastorm import make_batch_reader

    _quiet_petastorm()
    if not files:
        raise TrainingDataError(f"{where}: no files to read")
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    with make_batch_reader(
        files, schema_fields=columns, reader_pool_type=pool, num_epochs=1, shuffle_row_groups=False
    ) as reader:
        for chunk in reader:
            for column in columns:
                parts[column].append(as_rows(getattr(chunk, column)))
    got = sum(len(p) for p in parts[columns[0]])
    if got != expected_rows:
        raise TrainingDataError(
            f"{where}: Petastorm read {got} rows, the parquet footers hold {expected_rows}"
        )
    return {c: np.concatenate(p) for c, p in parts.items()}


def _quiet_petastorm() -> None:
    """Petastorm 0.13 calls pyarrow's legacy dataset API, which warns on every read; the warnings
    say nothing a user can act on (the pinned pyarrow is the one petastorm supports)."""
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=r"petastorm(\..*)?$")
