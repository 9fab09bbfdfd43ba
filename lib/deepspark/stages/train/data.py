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

import json
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pyspark.errors import PySparkException
from pyspark.ml.feature import CountVectorizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    IntegralType,
    NumericType,
    StringType,
)

from deepspark.config import (
    WINDOW_KEY,
    Config,
    DatasetConfig,
    ImageInput,
    SequenceInput,
    gold_table,
    one_of,
)
from deepspark.errors import describe
from deepspark.lineage import fingerprint
from deepspark.quarantine import KEYS as QUARANTINE_KEYS
from deepspark.quarantine import QUARANTINE, to_quarantine
from deepspark.recipes import (
    PAD,
    TOKEN_PATTERN,
    UNKNOWN,
    TrainingDataError,
    assign_split,
    feature_scaling,
    image_source,
    numeric_steps,
    series_of,
    series_of_window,
    to_training_images,
    tokenize,
    window_steps,
    with_key_and_label,
    word_ids,
)
from deepspark.tables import TableError, Tables
from deepspark.tensors import as_rows

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


# -- preparing the gold tables (the recipes, with labels and splits) ------------------------


def to_windows(
    labelled: DataFrame, spec: SequenceInput, shares: dict[str, float], seed: int
) -> tuple[DataFrame, dict[str, dict[str, float]]]:
    """``labelled`` steps (:func:`numeric_steps`, with a label) as windows: each window of
    ``spec.length`` consecutive rows of a series (every ``stride``-th) that ends on a labelled
    row, with that row's label and a split by series; and each feature's mean and deviation,
    which new rows need to be scored alike."""
    scaling = feature_scaling(labelled, spec.features)
    columns = [F.col(f"`{c}`") for c in [*spec.series, *spec.features, "_order", WINDOW_KEY, "label"]]
    steps = window_steps(labelled.select(*columns), spec, scaling)
    ends = steps.filter(
        (F.col("_n") >= spec.length)
        & ((F.col("_n") - spec.length) % spec.stride == 0)
        & F.col("label").isNotNull()
    )
    split = assign_split(series_of(spec), shares, seed).alias("split")
    return ends.select(WINDOW_KEY, "label", "values", split), scaling


def to_sequences(words: DataFrame, spec: DatasetConfig, vocabulary: list[str]) -> DataFrame:
    """Each text's words as ids in order, cut or padded to ``max_len``."""
    tokens = word_ids(vocabulary, spec.text.max_len).alias("tokens")
    return words.select(spec.row_key, "label", tokens, "split")  # label: a class id or a number


def learn_vocabulary(train_words: DataFrame, size: int) -> list[str]:
    """The ``size`` words found in most training texts (ids 2.. in this order)."""
    model = CountVectorizer(inputCol="_words", outputCol="_counts", vocabSize=size, minDF=1.0)
    return list(model.fit(train_words).vocabulary)


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
        check_white_level(labelled, spec.images, settings, where)
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


def check_white_level(frame: DataFrame, images: ImageInput, settings: Config, where: str) -> None:
    """Levels in an array or pixel columns that never pass 1, under the default max_level of 255,
    are fractions of white read as 8-bit levels: every image would come out black and the
    network would learn nothing. One aggregation over the levels says so before any image is
    converted; a max_level the conf sets is taken as given."""
    if "max_level" in images.model_fields_set:
        return
    form, arguments = image_source(frame, images, where)
    if form != "levels":
        return
    peak = frame.select(F.max(F.array_max(arguments[0]))).first()[0]
    if peak is not None and 0 < peak <= 1:
        raise settings.error(
            f"{where}.images.max_level",
            f"is unset, so levels run 0..255, but no pixel value is above {peak:g}: every image "
            "would be black; expected max_level: 1 if the levels are fractions of white (or 255, "
            "set, if they really are that dark)",
        )


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
    # Rows with no label stay steps of their series: only no window ends on them (a forecast's
    # label, the next step's value, is null on each series' last row).
    steps = numeric_steps(with_key_and_label(raw, spec, where, labels), spec.sequences, where)
    rejected = steps.filter(F.col("_problem").isNotNull())
    quarantined = quarantine(
        tables, rejected, raw.columns, WINDOW_KEY, "missing_value", F.col("_problem"), name, run_id
    )
    good = steps.filter(F.col("_problem").isNull())
    good, classes = prepare_labels(good, spec, where)
    windows, scaling = to_windows(good, spec.sequences, settings.train.splits, settings.run.seed)
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
    read = {f"{where}.input": spec.input}
    if spec.labels is not None:  # a new labels version is new data, as a new input version is
        read[f"{where}.labels.table"] = spec.labels.table
    for key, table in read.items():
        if not tables.exists(table):
            raise settings.error(key, f"= {table!r}: no such table; {one_of(table, tables.list())}")
    source = {table: tables.version(table) for table in read.values()}
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


def require_test_rows(tables: Tables, pinned: PinnedTable, dataset: DatasetConfig, settings: Config) -> None:
    """Evaluation reads the test split: a table whose test split drew no rows is refused before
    any rank starts, naming train.splits and how the units of the split (whole series, or
    examples) fell."""
    if pinned.rows["test"]:
        return
    series = dataset.kind == "sequences" and bool(dataset.sequences.series)
    if series:  # a window's key is its series, then its last step
        units = tables.read(pinned.table, version=pinned.version).select(
            "split", series_of_window(F.col(WINDOW_KEY)).alias("series")
        )
        counts = {
            r["split"]: r["n"]
            for r in units.groupBy("split").agg(F.countDistinct("series").alias("n")).collect()
        }
    else:
        counts = pinned.rows
    unit = "series" if series else "examples"
    fell = ", ".join(f"{split} {counts.get(split, 0)}" for split in SPLITS)
    shares = ", ".join(f"{split}: {share:g}" for split, share in settings.train.splits.items())
    raise settings.error(
        "train.splits",
        f"= {{{shares}}}: {pinned.table} v{pinned.version} has no test rows; by the hash of each, its "
        f"{sum(counts.values())} {unit} went {fell}; expected larger validation and test shares "
        f"(e.g. {{train: 0.6, validation: 0.2, test: 0.2}}) or more {unit}",
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
