"""Training data: gold tables for the networks, pinned snapshots, and Petastorm readers.

Two gold tables, each partitioned by ``split`` (train | validation | test):

* ``gold.digits``: ``digit_id``, ``label``, ``side``, ``pixels`` (side*side grey levels as bytes);
* ``gold.review_sequences``: ``review_id``, ``label`` (0/1), ``tokens`` (word ids in text order,
  0 pads, 1 is a word outside the vocabulary).

A training run reads a table *pinned to a Delta version* through that snapshot's own file list
(:class:`PinnedTable`), never the folder: a folder also holds files that the version has
logically removed. Each Horovod rank reads whole files (row groups) of its shard with Petastorm;
readers use the ``dummy`` or ``process`` pool, since the thread pool can yield no rows without an
error, and every one-pass read checks its row count against the parquet footers.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pyspark.ml.feature import CountVectorizer, RegexTokenizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, IntegralType, StringType

from deepspark.config import Config, DigitsData, SequenceData
from deepspark.lineage import fingerprint
from deepspark.tables import Tables
from deepspark.tensors import as_rows

log = logging.getLogger(__name__)

DIGITS_TABLE = "gold.digits"
SEQUENCES_TABLE = "gold.review_sequences"
SPLITS = ("train", "validation", "test")
PAD, UNKNOWN = 0, 1  # token ids below the vocabulary's
TOKEN_PATTERN = "[^\\p{L}\\p{N}']+"  # what separates words (lower-cased), as Spark's RegexTokenizer takes it


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


def to_training_digits(bronze: DataFrame, shares: dict[str, float], seed: int) -> DataFrame:
    """Bronze images (grey levels 0..255 as an array) as ``pixels``: side*side raw bytes, row by
    row, with a split. Bytes rather than a float array: 4x less to store and read, and Petastorm
    hands a binary column over 8x faster than a list column (bench/learning.py); the network
    scales them to 0..1 itself."""
    as_hex = F.transform("pixels", lambda p: F.lpad(F.hex(p.cast("int")), 2, "0"))
    return bronze.select(
        "digit_id",
        F.col("label").cast("int").alias("label"),
        F.col("width").cast("int").alias("side"),
        F.unhex(F.concat_ws("", as_hex)).alias("pixels"),
        assign_split(F.col("digit_id"), shares, seed).alias("split"),
    )


def tokenize(df: DataFrame, text: str) -> DataFrame:
    """Lower-case words in order, as the vocabulary and the sequences see them."""
    tokenizer = RegexTokenizer(inputCol=text, outputCol="_words", pattern=TOKEN_PATTERN)
    return tokenizer.transform(df.withColumn(text, F.coalesce(F.col(text), F.lit(""))))


def learn_vocabulary(train_words: DataFrame, size: int) -> list[str]:
    """The ``size`` words found in most training texts (ids 2.. in this order)."""
    model = CountVectorizer(inputCol="_words", outputCol="_counts", vocabSize=size, minDF=1.0)
    return list(model.fit(train_words).vocabulary)


def to_sequences(words: DataFrame, spec: SequenceData, vocabulary: list[str]) -> DataFrame:
    """Each text's words as ids in order, cut or padded to ``max_len``."""
    vocab = F.array(*[F.lit(word) for word in vocabulary])
    ids = F.transform(
        F.slice("_words", 1, spec.max_len),
        lambda w: (
            F.when(F.array_position(vocab, w) > 0, F.array_position(vocab, w) + 1)
            .otherwise(F.lit(UNKNOWN))
            .cast("int")
        ),
    )
    padding = F.array_repeat(F.lit(PAD), F.greatest(F.lit(0), F.lit(spec.max_len) - F.size(ids)))
    return words.select(
        F.col(spec.key).cast("string").alias(spec.key),
        F.col("label").cast("int").alias("label"),  # a class id (index_labels)
        F.concat(ids, padding).alias("tokens"),
        "split",
    )


def labelled_words(source: DataFrame, spec: SequenceData, shares: dict[str, float], seed: int) -> DataFrame:
    """Rows with a label (rows whose label expression gives null are left out), split, tokenized.
    The label is the expression's value as it is: :func:`index_labels` makes it a class id."""
    labelled = source.withColumn("label", F.expr(spec.label)).filter(F.col("label").isNotNull())
    labelled = labelled.withColumn("split", assign_split(F.col(spec.key), shares, seed))
    return tokenize(labelled, spec.text)


MAX_CLASSES = 1000


def index_labels(labelled: DataFrame, where: str) -> tuple[DataFrame, list[str] | None]:
    """Class ids 0..n-1 in ``label``, and the class names when they were not ids already.

    A string label (``label: source``, or a CASE giving 'bad' | 'mixed' | 'good') becomes the
    position of its value among the sorted distinct values, whose names are returned; an integer
    label must already be 0..n-1 (names: None, the ids are the names)."""
    kind = labelled.schema["label"].dataType
    if isinstance(kind, StringType | BooleanType):
        values = labelled.select(F.col("label").cast("string")).distinct().limit(MAX_CLASSES + 1).collect()
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
    settings: dict | None = None  # how it was prepared: train.digits or train.sequences
    classes: list[str] | None = None  # the name of each class id, where the label was not ids

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
        if self.vocabulary is not None:
            recipe |= {
                "tokenizer": TOKEN_PATTERN,
                "lower_case": True,
                "pad_id": PAD,
                "unknown_id": UNKNOWN,
                "vocabulary": self.vocabulary,  # word of id i + 2
            }
        return recipe


def prepare_digits(tables: Tables, settings: Config) -> PreparedTable:
    config = settings.train

    def build(version: int) -> tuple[DataFrame, dict]:
        bronze = tables.read(config.digits.input, version=version)
        return to_training_digits(bronze, config.splits, settings.run.seed), {}

    return _prepare(tables, settings, DIGITS_TABLE, config.digits, build)


def prepare_sequences(tables: Tables, settings: Config) -> PreparedTable:
    config, spec = settings.train, settings.train.sequences

    def build(version: int) -> tuple[DataFrame, list[str]]:
        raw = tables.read(spec.input, version=version)
        missing = [c for c in (spec.key, spec.text) if c not in raw.columns]
        if missing:
            raise TrainingDataError(
                f"train.sequences: {spec.input} has no column(s) {missing}; it has {raw.columns}"
            )
        words = labelled_words(raw, spec, config.splits, settings.run.seed)
        words, classes = index_labels(words, f"train.sequences.label = {spec.label!r} on {spec.input}")
        vocabulary = learn_vocabulary(words.filter(F.col("split") == "train"), spec.vocab_size)
        return to_sequences(words, spec, vocabulary), {"vocabulary": vocabulary, "classes": classes}

    return _prepare(tables, settings, SEQUENCES_TABLE, spec, build)


def _prepare(
    tables: Tables, settings: Config, name: str, spec: DigitsData | SequenceData, build
) -> PreparedTable:
    """Write ``name`` from ``build(input version)`` unless its rows already came from the same
    input version and settings: a rerun keeps the version, so a failed training resumes on the
    same data."""
    config = settings.train
    source = {spec.input: tables.version(spec.input)}
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
            spec.model_dump(),
            recorded.get("classes"),
        )
    frame, extras = build(source[spec.input])
    written = tables.write(
        frame.repartition(config.files_per_split),
        name,
        mode="overwrite",
        partition_by=["split"],
        evolve_schema=True,
    )
    marker.parent.mkdir(parents=True, exist_ok=True)
    vocabulary, classes = extras.get("vocabulary"), extras.get("classes")
    record = {
        "key": key,
        "version": written.version,
        "rows": written.rows_written,
        "vocabulary": vocabulary,
        "classes": classes,
    }
    marker.write_text(json.dumps({**record, "source": source}, indent=2))
    return PreparedTable(
        name, written.version, written.rows_written, True, source, vocabulary, spec.model_dump(), classes
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
