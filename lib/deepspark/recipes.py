"""Recipes: how raw rows become a network's examples. Pure transforms, shared by the train stage
(which writes them into ``gold.<dataset>``) and the predict stage (which applies a saved model's
recipe, from its manifest, to new rows):

* a key for each row (the dataset's, or a surrogate hash of the row's values) and the label;
* images from an array column, pixel columns, encoded files or Spark's image struct, converted
  to grey or RGB and resized or padded (:func:`to_training_images`);
* text as word ids of a vocabulary (:func:`tokenize`, :func:`word_ids`);
* numeric sequences as windows of standardized steps (:func:`feature_scaling`,
  :func:`numeric_steps`, :func:`window_steps`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import re

import numpy as np
import pandas as pd
from pyspark.errors import PySparkException
from pyspark.ml.feature import RegexTokenizer
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BinaryType, StructType

from deepspark.bronze import METADATA, PROBLEMS
from deepspark.config import SURROGATE_KEY, WINDOW_KEY, DatasetConfig, ImageInput, LabelsTable, SequenceInput
from deepspark.errors import describe

PAD, UNKNOWN = 0, 1  # token ids below the vocabulary's
TOKEN_PATTERN = "[^\\p{L}\\p{N}']+"  # what separates words (lower-cased), as Spark's RegexTokenizer takes it
FOLDER = "_folder"  # the name of a landed file's folder: the class of images in class folders
FILE = "_file"  # a landed file's own name: what a labels table names it by
IMAGE_FILES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}  # by suffix


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


def with_key(source: DataFrame, spec: DatasetConfig, where: str) -> DataFrame:
    """The input with its key as a string (a surrogate hash of the row's values when the
    dataset names none; sequences are keyed by series and step once windowed), and ``_folder``
    and ``_file`` for landed files."""
    content = [c for c in source.columns if c not in METADATA and c not in PROBLEMS]
    keyed = spec.kind != "sequences"
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
    return source.withColumn(spec.row_key, F.col(spec.row_key).cast("string")) if keyed else source


def with_key_and_label(
    source: DataFrame, spec: DatasetConfig, where: str, labels: DataFrame | None = None
) -> DataFrame:
    """:func:`with_key`, the ``labels`` table's columns (:func:`join_labels`), and ``label``
    from the label expression."""
    keyed = with_key(source, spec, where)
    if labels is not None:  # after the key: a surrogate hashes the example, not its label
        keyed = join_labels(keyed, labels, spec.labels, f"{where}.labels")
    return with_expression(keyed, "label", spec.label, f"{where}.label")


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
            return levels_image(values[0], self.spec.width, self.spec.depth, self.spec.max_level)
        if self.form == "encoded":
            return encoded_image(values[0])
        data, height, width, channels = values
        if data is None or height is None or height < 0:
            raise ValueError("not a decodable image (Spark's image source could not read it)")
        pixels = np.frombuffer(data, dtype=np.uint8).reshape(height, width, channels)
        return pixels[..., [2, 1, 0]] if channels >= 3 else pixels  # BGR(A) -> RGB

    def fit(self, pixels: np.ndarray) -> np.ndarray:
        return fit_image(pixels, self.spec.channels, self.spec.size, self.spec.fit)


def levels_image(values, width: int | None, depth: int, max_level: float) -> np.ndarray:
    """Levels 0..``max_level`` -> a (height, width, depth) uint8 image of levels 0..255."""
    if values is None or len(values) == 0:
        raise ValueError("no pixel values")
    levels = np.asarray(values, dtype=np.float64)
    if np.isnan(levels).any():
        raise ValueError(f"{int(np.isnan(levels).sum())} pixel value(s) missing or not numbers")
    if levels.min() < 0 or levels.max() > max_level:
        raise ValueError(
            f"pixel values {levels.min():g}..{levels.max():g}; expected levels 0..{max_level:g} "
            "(images.max_level: the level of a white pixel)"
        )
    levels = levels * (255 / max_level)  # exact where max_level is 255
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


def feature_scaling(rows: DataFrame, features: list[str]) -> dict[str, dict[str, float]]:
    """Each feature's mean and deviation over ``rows``: what its values are standardized by."""
    stats = rows.agg(
        *[F.avg(F.col(f"`{f}`")).alias(f"m{i}") for i, f in enumerate(features)],
        *[F.stddev_pop(F.col(f"`{f}`")).alias(f"s{i}") for i, f in enumerate(features)],
    ).first()
    return {f: {"mean": stats[f"m{i}"] or 0.0, "std": stats[f"s{i}"] or 1.0} for i, f in enumerate(features)}


def numeric_steps(rows: DataFrame, spec: SequenceInput, where: str) -> DataFrame:
    """``rows`` as steps of their series: ``_order`` (the value of ``spec.order``), each feature
    as a number (text that is not one becomes null), the step's ``window_id`` (its series and
    order: the key of the window that ends on it) and ``_problem``: null, or which features are
    missing or not numbers."""
    missing = [c for c in [*spec.features, *spec.series] if c not in rows.columns]
    if missing:
        raise TrainingDataError(f"{where}.sequences: no column(s) {missing}; the input has {rows.columns}")
    rows = with_expression(rows, "_order", spec.order, f"{where}.sequences.order")
    rows = rows.withColumns({f: F.col(f"`{f}`").try_cast("double") for f in spec.features})
    broken = F.concat_ws(", ", *[F.when(F.col(f"`{f}`").isNull(), F.lit(f)) for f in spec.features])
    said = F.concat(F.lit(f"{where}.sequences.features: missing or not a number: "), broken)
    step = F.concat_ws(
        "|", *[F.col(f"`{c}`").cast("string") for c in spec.series], F.col("_order").cast("string")
    )
    return rows.withColumns({WINDOW_KEY: step, "_problem": F.when(broken != "", said)})


def window_steps(steps: DataFrame, spec: SequenceInput, scaling: dict[str, dict[str, float]]) -> DataFrame:
    """Good ``steps`` (:func:`numeric_steps`) with the window that ends on each: ``values``
    (the standardized features of ``spec.length`` consecutive steps of a series, step by step)
    and ``_n``, the step's place in its series (a window is whole from ``_n == length`` on)."""
    scaled = [
        ((F.col(f"`{f}`") - F.lit(scaling[f]["mean"])) / F.lit(scaling[f]["std"])).cast("float")
        for f in spec.features
    ]
    series = [F.col(f"`{c}`") for c in spec.series]
    ordered = Window.partitionBy(*series).orderBy("_order")
    steps = steps.withColumns({"_step": F.array(*scaled), "_n": F.row_number().over(ordered)})
    window = F.collect_list("_step").over(ordered.rowsBetween(-(spec.length - 1), 0))
    return steps.withColumn("values", F.flatten(window)).drop("_step")


def series_of_window(window_id: F.Column) -> F.Column:
    """The series part of a window's key (``<series>|<last step>``, see :func:`numeric_steps`)."""
    return F.regexp_extract(window_id, r"^(.*)\|[^|]*$", 1)


def series_of(spec: SequenceInput) -> F.Column:
    """What identifies a window's series (the splits go by it), or the window itself."""
    series = [F.col(f"`{c}`").cast("string") for c in spec.series]
    return F.concat_ws("|", *series) if series else F.col(WINDOW_KEY)


def tokenize(df: DataFrame, text: str) -> DataFrame:
    """Lower-case words in order, as the vocabulary and the sequences see them."""
    tokenizer = RegexTokenizer(inputCol=text, outputCol="_words", pattern=TOKEN_PATTERN)
    return tokenizer.transform(df.withColumn(text, F.coalesce(F.col(text), F.lit(""))))


def word_ids(vocabulary: list[str], max_len: int, words: str = "_words") -> F.Column:
    """Each text's words as ids in order (a word of ``vocabulary`` at i is i + 2; any other,
    UNKNOWN), cut or padded with PAD to ``max_len``."""
    vocab = F.array(*[F.lit(word) for word in vocabulary])
    ids = F.transform(
        F.slice(words, 1, max_len),
        lambda w: (
            F.when(F.array_position(vocab, w) > 0, F.array_position(vocab, w) + 1)
            .otherwise(F.lit(UNKNOWN))
            .cast("int")
        ),
    )
    padding = F.array_repeat(F.lit(PAD), F.greatest(F.lit(0), F.lit(max_len) - F.size(ids)))
    return F.concat(ids, padding)


# -- a saved model's recipe, applied to new rows --------------------------------------------

PROBLEM = "problem"  # why a new row could not be made an example (null: it could)


def recipe_dataset(recipe: dict) -> DatasetConfig:
    """The ``train.datasets.<name>`` settings a model's manifest keeps (``data``)."""
    return DatasetConfig.model_validate({k: v for k, v in recipe.items() if k in DatasetConfig.model_fields})


def new_examples(frame: DataFrame, recipe: dict, shape: tuple[int, ...], where: str) -> tuple[DataFrame, str]:
    """New rows as the model with this recipe (its manifest's ``data``, with ``vocabulary``
    loaded) reads them, made as its gold table was: (the examples, their key column).

    Each example has its key (the dataset's when the rows have that column, else a surrogate
    hash of the row's values; a window's series and last step), ``_source_file`` where the rows
    came from files, ``label`` where the label expression resolves on the new rows, a text's own
    column, the model's input column (``pixels``, ``tokens`` or ``values``), and ``problem``:
    null, or why the row cannot be scored (an unreadable image, a missing feature), with a null
    input. Images are fitted to the model's ``shape``; sequences are standardized by the saved
    scaling and give one example per whole window (every step from the length-th on), so the last
    one is the forecast.
    """
    spec = recipe_dataset(recipe).model_copy(update={"labels": None})  # new rows have no labels table
    if spec.kind != "sequences" and spec.key is not None and spec.key not in frame.columns:
        spec = spec.model_copy(update={"key": None})  # not in the new rows: a surrogate
    keyed = with_key(frame, spec, where)
    with contextlib.suppress(TrainingDataError):  # no label in the new rows: scored, not measured
        keyed = with_expression(keyed, "label", spec.label, f"{where}.label")
    carried = [c for c in ("_source_file", "label") if c in keyed.columns]
    issue = F.col("_ingest_issue") if "_ingest_issue" in keyed.columns else F.lit(None).cast("string")
    key = spec.row_key
    if spec.kind == "images":
        fitted = spec.images.model_copy(update={"size": tuple(shape[:2])})  # any size: the model's
        converted = to_training_images(keyed, fitted, where)
        problem = F.coalesce(issue, F.concat(F.lit(f"{where}.images: "), F.col("_image.problem")))
        pixels = F.when(problem.isNull(), F.col("_image.pixels")).alias("pixels")
        return converted.select(key, *carried, pixels, problem.alias(PROBLEM)), key
    if spec.kind == "text":
        if spec.text.column not in keyed.columns:
            raise TrainingDataError(
                f"{where}.text.column = {spec.text.column!r}: no such column in the new rows; "
                f"they have {frame.columns}"
            )
        words = tokenize(keyed, spec.text.column)
        tokens = word_ids(recipe["vocabulary"], spec.text.max_len).alias("tokens")
        text = [] if spec.text.column == key else [F.col(f"`{spec.text.column}`")]  # beside its prediction
        return words.select(key, *carried, *text, tokens, issue.alias(PROBLEM)), key
    return new_windows(keyed, spec, recipe["scaling"], carried, where), key


def new_windows(
    keyed: DataFrame, spec: DatasetConfig, scaling: dict, carried: list[str], where: str
) -> DataFrame:
    """New rows of a time-ordered table as whole windows (:func:`new_examples`); a row with a
    feature that is missing or not a number is an example of its own, with the problem."""
    steps = numeric_steps(keyed, spec.sequences, where)
    rejected = steps.filter(F.col("_problem").isNotNull()).select(
        WINDOW_KEY,
        *carried,
        F.lit(None).cast("array<float>").alias("values"),
        F.col("_problem").alias(PROBLEM),
    )
    whole = window_steps(steps.filter(F.col("_problem").isNull()), spec.sequences, scaling)
    whole = whole.filter(F.col("_n") >= spec.sequences.length)
    return whole.select(WINDOW_KEY, *carried, "values", F.col("_problem").alias(PROBLEM)).unionByName(
        rejected
    )
