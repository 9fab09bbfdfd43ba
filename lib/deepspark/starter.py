"""``deepspark init``: a starter conf for landed files, so a project's first run takes minutes.

For each folder under the landing folder (one source each) it reads a sample of the first file
to find the format and the CSV dialect (delimiter, header, encoding, quoted values spanning
lines) or the JSON record schema, then profiles every file of the source with Spark: per
column its non-null and distinct counts, whether every value is an integer (``517.0``
included), a number, a date or a timestamp, and which common null tokens (``NA``, ``N/A``,
``null``, ...) occur. From that it writes ``ingest.yaml`` (the contract), ``clean.yaml`` (types,
nulls and a key: a column found unique and never null, else a surrogate key over every column)
and ``validate.yaml`` (a Great Expectations suite: row count, not-null, unique key, observed
numeric ranges as warnings). A folder of image files lands as ``binaryFile``, and a folder of
``.txt`` files that do not read as a table as ``text`` (one row per file); when such files sit
in class folders (``cat/``, ``dog/``) it also writes ``train.yaml``: a dataset labelled by
folder and a network for it (images: at most files' size, else the median, the longer side at
most 64 pixels, and a CNN that fits it; texts: the words most of them hold, and an LSTM).
Great Expectations 1.x has no profiler any more (its rule-based profilers and data assistants
were removed in 1.0), so the profile is Spark's.

Everything written is a starting point to read and edit: the file says so at its top.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from deepspark.recipes import FOLDER, IMAGE_FILES
from deepspark.stages.clean.stage import comma_decimal
from deepspark.stages.ingest import CORRUPT

NULL_TOKENS = ["NA", "N/A", "n/a", "NaN", "null", "NULL", "None", "-", "?"]
DATE_FORMATS = [
    "yyyy-MM-dd",
    "dd/MM/yyyy",
    "MM/dd/yyyy",
    "dd.MM.yyyy",
    "yyyy/MM/dd",
    "d-MMM-yy",  # 19-Sep-03, as spreadsheets export dates
    "d-MMM-yyyy",
    "d MMM yyyy",
    "MMM d, yyyy",
]
TIMESTAMP_FORMATS = ["yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ssXXX"]
SAMPLE_BYTES = 1 << 16
SAMPLE_FILES = 500  # files of a folder of images or texts read for their size, colour or words
LONGEST_SIDE = 64  # the starter's network input: larger images are scaled down to it
HEADER = "# Written by `deepspark init` from the files it found: a starting point, read and edit it.\n"


@dataclass
class Column:
    name: str
    type: str | None = None  # a Spark SQL type; None: text
    formats: list[str] = field(default_factory=list)
    decimal: str = "."  # "," for numbers written 1.234,5
    nulls: int = 0
    distinct: int = 0
    minimum: float | None = None
    maximum: float | None = None


@dataclass
class ImageProfile:
    """A folder of image files: its class folders and the size and colour the network reads."""

    classes: list[str]  # the class folders' names; empty when the files are not in two or more
    size: tuple[int, int]  # [height, width]: most files' size, else the median, scaled to LONGEST_SIDE
    channels: int  # 3 when any sampled file is in colour
    unreadable: int  # sampled files that are not images
    network = "cnn"  # the kind of the starter's model: a class attribute, not a field

    def dataset(self, name: str) -> dict:
        images = {"column": "content", "channels": self.channels, "size": list(self.size), "fit": "pad"}
        return {"kind": "images", "input": f"bronze.{name}", "key": "path", "label": FOLDER, "images": images}

    def model(self, name: str) -> dict:
        """A small CNN: each 3x3 convolution takes 2 pixels, each pooling between two halves."""
        side = min(self.size)
        conv = [16, 32, 64] if side >= 18 else [16, 32] if side >= 8 else [16]
        return {"kind": self.network, "dataset": name, "epochs": 10, "cnn": {"conv": conv, "dense": [32]}}


@dataclass
class TextProfile:
    """A folder of text files, one example each: its class folders and the words they hold."""

    classes: list[str]  # the class folders' names; empty when the files are not in two or more
    max_len: int  # words kept per text: most sampled texts fit whole
    vocab_size: int
    network = "rnn"

    def dataset(self, name: str) -> dict:
        text = {"column": "value", "vocab_size": self.vocab_size, "max_len": self.max_len}
        return {
            "kind": "text",
            "input": f"bronze.{name}",
            "key": "_source_file",
            "label": FOLDER,
            "text": text,
        }

    def model(self, name: str) -> dict:
        return {"kind": self.network, "dataset": name, "epochs": 10, "rnn": {"cell": "lstm", "units": 32}}


@dataclass
class SourceProfile:
    name: str
    format: str
    rows: int
    columns: list[Column]
    options: dict[str, str] = field(default_factory=dict)
    ddl: str | None = None
    null_values: list[str] = field(default_factory=list)
    key: str | None = None
    malformed: int = 0  # lines that are not records (JSON): left out of the profile
    images: ImageProfile | None = None
    texts: TextProfile | None = None

    @property
    def examples(self) -> ImageProfile | TextProfile | None:
        """What a network trains on, for a folder of files that are one example each."""
        return self.images or self.texts

    def summary(self) -> str:
        """One line for the console: what was found, and what the starter conf makes of it."""
        if self.texts is not None:
            found = f"{self.name}: {self.rows} text files, {self.texts.max_len} words kept per text"
            return self._trains(found)
        if self.images is None:
            key = self.key or f"none unique: surrogate_key {self.name}_id"
            broken = (
                f"; {self.malformed} malformed line(s), which ingest quarantines" if self.malformed else ""
            )
            return f"{self.name}: {self.format}, {self.rows} rows, key {key}{broken}"
        images = self.images
        height, width = images.size
        found = f"{self.name}: {self.rows} image files, read at {height}x{width}x{images.channels}"
        if images.unreadable:
            found += f" ({images.unreadable} sampled file(s) not images: training quarantines them)"
        return self._trains(found)

    @property
    def model_name(self) -> str:
        """The starter's model for a folder of examples: ``<source>_cnn`` or ``<source>_rnn``."""
        return f"{self.name}_{self.examples.network}"

    def _trains(self, found: str) -> str:
        """``found``, then what train.yaml makes of the class folders, or why it has nothing."""
        classes = self.examples.classes
        if not classes:
            return (
                f"{found}; no class folders, so no train dataset (label them: train.datasets.<name>.labels)"
            )
        shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
        return f"{found}; {len(classes)} class folders ({shown}): train.yaml trains {self.model_name}"

    def source(self) -> dict:
        entry: dict = {"format": self.format, "path": self.name}
        if self.format == "text":
            return entry  # one row per file, its text in ``value``
        if self.format == "csv":
            entry["columns"] = [c.name for c in self.columns]
        if self.ddl:
            entry["ddl"] = self.ddl
        if self.options:
            entry["options"] = self.options
        if self.null_values:
            entry["null_values"] = self.null_values
        return entry

    def cleaning(self) -> dict:
        columns = {}
        for column in self.columns:
            rule: dict = {}
            if column.type:
                rule["type"] = column.type
            if column.formats:
                rule["formats"] = column.formats
            if column.decimal != ".":
                rule["decimal"] = column.decimal
            if column.name == self.key:
                rule["nulls"] = "drop"
            if rule:
                columns[column.name] = rule
        keyed = (
            {"keys": [self.key]}
            if self.key
            else {"surrogate_key": {"column": f"{self.name}_id", "columns": [c.name for c in self.columns]}}
        )
        return {**keyed, "columns": columns}

    def suite(self) -> list[dict]:
        expectations = [
            {"expectation": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        ]
        key = self.key or f"{self.name}_id"
        expectations.append({"expectation": "expect_column_values_to_be_unique", "kwargs": {"column": key}})
        for column in self.columns:
            if column.nulls == 0 and column.name != self.key:
                expectations.append(
                    {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": column.name}}
                )
            if column.minimum is not None and column.type in ("int", "bigint", "double"):
                expectations.append(
                    {
                        "expectation": "expect_column_values_to_be_between",
                        "kwargs": {
                            "column": column.name,
                            "min_value": column.minimum,
                            "max_value": column.maximum,
                        },
                        "severity": "warning",
                    }
                )
        return expectations


def sniff_csv(sample: bytes) -> dict[str, str]:
    """Reader options for a CSV sample: its delimiter, ``comment: "#"`` when a line starting
    with ``#`` comes before the header (a vendor's note), and multiLine when a quoted value spans
    lines. (Bytes that are not UTF-8 need no option: ingest decodes them value by value.)"""
    text = sample.decode("latin-1") if not _is_utf8(sample) else sample.decode("utf-8")
    text = text.removeprefix("\ufeff")
    options: dict[str, str] = {}
    lines = text.splitlines(keepends=True)
    if next((line for line in lines if line.strip()), "").startswith("#"):
        options["comment"] = "#"
        text = "".join(line for line in lines if not line.startswith("#"))
    dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    if dialect.delimiter != ",":
        options["sep"] = dialect.delimiter
    records = list(csv.reader(io.StringIO(text.rsplit("\n", 1)[0]), dialect))
    if any("\n" in value for record in records for value in record):
        options["multiLine"] = "true"
    return options


def _ddl_name(name: str) -> str:
    """A field name as a DDL string needs it: quoted unless a plain identifier."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else "`" + name.replace("`", "``") + "`"


def _is_table(path: Path) -> bool:
    """Whether a .txt file reads as delimited records (a header and rows), not as prose."""
    try:
        sniff_csv(path.read_bytes()[:SAMPLE_BYTES])
    except csv.Error:  # no delimiter found
        return False
    return True


def _is_utf8(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as cut:
        return cut.start >= len(sample) - 3  # only a character cut at the sample's end
    return True


def profile_frame(df: DataFrame) -> tuple[int, list[Column], list[str]]:
    """Rows, per-column profiles (all values read as text) and the null tokens found, in one pass."""
    tokens = F.array(*[F.lit(t) for t in NULL_TOKENS])
    aggregates = [F.count(F.lit(1)).alias("rows")]
    for i, name in enumerate(df.columns):
        raw = F.trim(F.col(f"`{name}`"))
        value = F.when(~F.array_contains(tokens, raw) & (raw != ""), raw)
        number = value.try_cast("double")
        comma = comma_decimal(value).try_cast("double")
        whole = F.nullif(F.regexp_extract(value, r"^([+-]?[0-9]+)(\.0*)?$", 1), F.lit(""))
        aggregates += [
            F.count(value).alias(f"n{i}"),
            F.approx_count_distinct(value).alias(f"d{i}"),
            F.count(number).alias(f"num{i}"),
            F.count(whole).alias(f"int{i}"),
            F.min(number).alias(f"min{i}"),
            F.max(number).alias(f"max{i}"),
            F.count(comma).alias(f"comma{i}"),
            F.min(comma).alias(f"cmin{i}"),
            F.max(comma).alias(f"cmax{i}"),
            F.collect_set(F.when(F.array_contains(tokens, raw), raw)).alias(f"tok{i}"),
        ]
        for j, fmt in enumerate(DATE_FORMATS + TIMESTAMP_FORMATS):
            aggregates.append(F.count(F.try_to_timestamp(value, F.lit(fmt))).alias(f"t{i}_{j}"))
    row = df.agg(*aggregates).first()
    columns, found_tokens = [], set()
    for i, name in enumerate(df.columns):
        present = row[f"n{i}"]
        column = Column(name, nulls=row["rows"] - present, distinct=row[f"d{i}"])
        found_tokens |= set(row[f"tok{i}"])
        if present and row[f"int{i}"] == present:
            column.type = "bigint" if max(abs(row[f"min{i}"]), abs(row[f"max{i}"])) >= 2**31 else "int"
        elif present and row[f"num{i}"] == present:
            column.type = "double"
        elif present and row[f"comma{i}"] == present:
            column.type, column.decimal = "double", ","
        elif present:
            parsed = [(row[f"t{i}_{j}"], fmt) for j, fmt in enumerate(DATE_FORMATS + TIMESTAMP_FORMATS)]
            fitting = [fmt for count, fmt in parsed if count == present]
            if fitting:
                column.type = "date" if fitting[0] in DATE_FORMATS else "timestamp"
                column.formats = [fitting[0]]
        if column.type in ("int", "bigint", "double"):
            low, high = ("cmin", "cmax") if column.decimal == "," else ("min", "max")
            column.minimum, column.maximum = row[f"{low}{i}"], row[f"{high}{i}"]
        columns.append(column)
    return row["rows"], columns, sorted(found_tokens)


def find_key(df: DataFrame, rows: int, columns: list[Column]) -> str | None:
    """The first column whose values look unique (approximately) and are never null, checked
    exactly: a key that is not unique would merge records."""
    for column in columns:
        # approx_count_distinct errs by up to 5% (300 unique ids counted 289): a near-unique
        # count earns the exact check
        unique_enough = column.nulls == 0 and rows and column.distinct >= 0.9 * rows
        if unique_enough and df.select(f"`{column.name}`").distinct().count() == rows:
            return column.name
    return None


def _sample(files: list[Path]) -> list[Path]:
    """About SAMPLE_FILES of ``files``, spread over all of them."""
    return files[:: max(1, len(files) // SAMPLE_FILES)]


def class_folders(folder: Path, files: list[Path]) -> list[str]:
    """The names of the folders the files sit in, when they all sit in one of two or more."""
    parents = {p.parent for p in files}
    return sorted(p.name for p in parents) if len(parents) > 1 and folder not in parents else []


def profile_texts(folder: Path, files: list[Path]) -> TextProfile:
    """Words per text (a sample's 90th percentile, 16 to 256, kept whole) and a vocabulary of
    half the distinct words sampled (100 to 10,000)."""
    lengths, words = [], set()
    for path in _sample(files):
        found = re.findall(r"\w+", path.read_bytes()[:SAMPLE_BYTES].decode("utf-8", "replace").lower())
        lengths.append(len(found))
        words.update(found)
    longest = sorted(lengths)[int(0.9 * (len(lengths) - 1))] if lengths else 16
    return TextProfile(
        class_folders(folder, files), min(256, max(16, longest)), min(10_000, max(100, len(words) // 2))
    )


def profile_images(folder: Path, files: list[Path]) -> ImageProfile:
    """Class folders from the files' paths; size and colour from the headers of a sample."""
    from PIL import Image, UnidentifiedImageError

    classes = class_folders(folder, files)
    sizes: Counter[tuple[int, int]] = Counter()
    colour, unreadable = False, 0
    for path in _sample(files):
        try:
            with Image.open(path) as image:
                sizes[(image.height, image.width)] += 1
                colour |= image.mode not in ("1", "L", "LA", "I", "I;16", "F")
        except (OSError, UnidentifiedImageError):
            unreadable += 1
    seen = list(sizes.elements())
    if not seen:
        height, width = 32, 32
    elif sizes.most_common(1)[0][1] * 2 >= len(seen):  # one size for most of them
        height, width = sizes.most_common(1)[0][0]
    else:  # sizes all over: the median side of each
        height, width = sorted(h for h, _ in seen)[len(seen) // 2], sorted(w for _, w in seen)[len(seen) // 2]
    scale = min(1.0, LONGEST_SIDE / max(height, width))
    size = (max(3, round(height * scale)), max(3, round(width * scale)))
    return ImageProfile(classes, size, 3 if colour else 1, unreadable)


def profile_source(spark: SparkSession, folder: Path) -> SourceProfile | None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
    if not files:
        return None
    if all(p.suffix.lower() in IMAGE_FILES for p in files):
        return SourceProfile(folder.name, "binaryFile", len(files), [], images=profile_images(folder, files))
    suffix = files[0].suffix.lower().lstrip(".")
    paths = [str(p) for p in files]
    if suffix == "txt" and (class_folders(folder, files) or not _is_table(files[0])):
        return SourceProfile(folder.name, "text", len(files), [], texts=profile_texts(folder, files))
    if suffix in ("csv", "tsv", "txt"):
        options = sniff_csv(files[0].read_bytes()[:SAMPLE_BYTES])
        df = spark.read.options(header="true", **options).csv(paths)
        rows, columns, tokens = profile_frame(df)
        profile = SourceProfile(folder.name, "csv", rows, columns, options, null_values=tokens)
    elif suffix in ("json", "jsonl", "ndjson"):
        reader = spark.read.option("columnNameOfCorruptRecord", CORRUPT)
        inferred, malformed = reader.json(paths).cache(), 0  # cached: Spark will not filter raw
        if CORRUPT in inferred.columns:  # lines that are not JSON records: not part of the contract
            malformed = inferred.filter(F.col(CORRUPT).isNotNull()).count()
            inferred = inferred.filter(F.col(CORRUPT).isNull()).drop(CORRUPT)
        ddl = ", ".join(f"{_ddl_name(f.name)} {f.dataType.simpleString()}" for f in inferred.schema.fields)
        text = inferred.select(*[F.col(f"`{c}`").cast("string").alias(c) for c in inferred.columns])
        rows, columns, tokens = profile_frame(text)
        for column, spark_field in zip(columns, inferred.schema.fields, strict=True):
            if spark_field.dataType.simpleString() != "string":
                column.type, column.formats = None, []  # JSON already typed it
        profile = SourceProfile(
            folder.name, "json", rows, columns, ddl=ddl, null_values=tokens, malformed=malformed
        )
        df = text
    elif suffix == "parquet":
        df = spark.read.parquet(*paths)
        rows = df.count()
        columns = [Column(f.name) for f in df.schema.fields]
        profile = SourceProfile(folder.name, "parquet", rows, columns)
    else:
        return None
    profile.key = find_key(df, profile.rows, profile.columns)
    return profile


def write_starter(
    spark: SparkSession, landing: Path, conf_dir: Path, force: bool = False
) -> list[SourceProfile]:
    """Profile each source folder under ``landing`` and write the starter conf under
    ``conf_dir/base``; returns the profiles. Existing files are kept unless ``force``."""
    base = conf_dir / "base"
    if (base / "ingest.yaml").exists() and not force:  # before the profiling: it takes a while
        raise FileExistsError(f"{base / 'ingest.yaml'} exists; pass --force to overwrite the starter conf")
    folders = sorted(f for f in landing.iterdir() if f.is_dir()) if landing.is_dir() else []
    profiles = [profile for profile in map(lambda f: profile_source(spark, f), folders) if profile]
    if not profiles:
        raise FileNotFoundError(f"{landing}: no source folders with csv, json, parquet or image files found")
    project = conf_dir.resolve().parent
    data_root = project / "data"
    landing_dir = os.path.relpath(landing.resolve(), data_root)
    tables = [p for p in profiles if p.examples is None]
    labelled = [p for p in profiles if p.examples and p.examples.classes]
    sections = {
        "ingest.yaml": {"landing_dir": str(landing_dir), "sources": {p.name: p.source() for p in profiles}},
        "clean.yaml": {"datasets": {p.name: p.cleaning() for p in tables}} if tables else None,
        "validate.yaml": {"suites": {p.name: p.suite() for p in tables}} if tables else None,
        "train.yaml": {
            "datasets": {p.name: p.examples.dataset(p.name) for p in labelled},
            "models": {p.model_name: p.examples.model(p.name) for p in labelled},
        }
        if labelled
        else None,
    }
    existing = [base / name for name, section in sections.items() if section and (base / name).exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]} exists; pass --force to overwrite the starter conf")
    base.mkdir(parents=True, exist_ok=True)
    for name, section in sections.items():
        if section is not None:
            text = yaml.safe_dump(section, sort_keys=False, width=100, default_flow_style=None)
            (base / name).write_text(HEADER + text, encoding="utf-8")
    return profiles
